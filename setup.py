"""Build of denet._denet: compiles bpf/*.bpf.c with clang, turns each object into a libbpf
skeleton header with bpftool, then compiles csrc/*/*.c (C11, -Wall -Wextra -Werror).

The kernel types come from a vmlinux.h vendored per architecture (bpf/vmlinux/<arch>/,
as libbpf-tools does), so the build host needs no BTF: CO-RE relocates the objects to
the running kernel when they load. Vendored: see VENDORED_VMLINUX."""
import glob
import os
import platform
import shutil
import subprocess

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))
BPF_ARCH = {"x86_64": "x86", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine(), "x86")
# Architectures with a vendored bpf/vmlinux/<arch>/vmlinux.h: x86 (from Linux 6.18's BTF)
# and arm64 (from Debian 12's linux-image-6.12.117+deb12-arm64); the first line of each
# says where it came from, `make vmlinux-h` regenerates this host's. Others fall back to
# dumping the build host's own BTF.
VENDORED_VMLINUX = sorted(d for d in os.listdir(os.path.join(HERE, "bpf", "vmlinux"))
                          if os.path.exists(os.path.join(HERE, "bpf", "vmlinux", d, "vmlinux.h")))


def find_tool(name):
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/local/sbin")
    if not path:
        raise SystemExit(
            f"denet build: '{name}' not found; install it (Debian: apt-get install clang llvm "
            "bpftool libbpf-dev libelf-dev zlib1g-dev), or run 'make' which does")
    return path


def run(cmd, **kw):
    print(" ".join(cmd))
    subprocess.run(cmd, check=True, **kw)


class BuildExtWithBpf(build_ext):
    """build_ext that first generates the BPF skeleton headers."""

    def run(self):
        self.build_bpf()
        super().run()

    @staticmethod
    def vmlinux_dir(bpftool, out):
        """Directory of the vmlinux.h to compile against: the vendored one of this
        architecture, else one dumped from the build host's BTF."""
        if BPF_ARCH in VENDORED_VMLINUX:
            return os.path.join(HERE, "bpf", "vmlinux", BPF_ARCH)
        btf = "/sys/kernel/btf/vmlinux"
        if not os.path.exists(btf):
            raise SystemExit(
                f"denet build: no vmlinux.h vendored for {BPF_ARCH} (vendored: "
                f"{', '.join(VENDORED_VMLINUX)}) and this host has no BTF ({btf}) to dump one from")
        print(f"denet build: no vendored vmlinux.h for {BPF_ARCH}; dumping this host's BTF")
        vmlinux = os.path.join(out, "vmlinux.h")
        if not os.path.exists(vmlinux) or os.path.getmtime(vmlinux) < os.path.getmtime(btf):
            with open(vmlinux + ".tmp", "w") as f:
                run([bpftool, "btf", "dump", "file", btf, "format", "c"], stdout=f)
            os.replace(vmlinux + ".tmp", vmlinux)
        return out

    def build_bpf(self):
        out = os.path.join(HERE, "build", "bpf")
        os.makedirs(out, exist_ok=True)
        bpftool = find_tool("bpftool")
        clang = find_tool("clang")
        strip = shutil.which("llvm-strip") or find_tool("llvm-strip-14")
        vmlinux_dir = self.vmlinux_dir(bpftool, out)
        vmlinux = os.path.join(vmlinux_dir, "vmlinux.h")
        headers = glob.glob(os.path.join(HERE, "bpf", "*.h"))
        for src in sorted(glob.glob(os.path.join(HERE, "bpf", "*.bpf.c"))):
            name = os.path.basename(src)[: -len(".bpf.c")]
            obj = os.path.join(out, name + ".bpf.o")
            skel = os.path.join(out, name + ".skel.h")
            deps = [src, vmlinux] + headers
            if os.path.exists(skel) and os.path.getmtime(skel) >= max(map(os.path.getmtime, deps)):
                continue
            run([clang, "-g", "-O2", "-target", "bpf", f"-D__TARGET_ARCH_{BPF_ARCH}",
                 "-Wall", "-Werror", "-I", vmlinux_dir, "-I", os.path.join(HERE, "bpf"),
                 "-c", src, "-o", obj])
            # -g is for BTF (CO-RE needs it); the DWARF that comes with it is not.
            run([strip, "-g", obj])
            with open(skel + ".tmp", "w") as f:
                run([bpftool, "gen", "skeleton", obj, "name", name + "_bpf"], stdout=f)
            os.replace(skel + ".tmp", skel)
        for ext in self.extensions:
            if out not in ext.include_dirs:
                ext.include_dirs.append(out)
            ext.depends += glob.glob(os.path.join(out, "*.skel.h"))


extra_cflags = ["-std=c11", "-D_GNU_SOURCE", "-Wall", "-Wextra", "-Werror", "-O2", "-fvisibility=hidden",
                "-Wno-missing-field-initializers"]
extra_ldflags = []
if os.environ.get("DENET_SANITIZE"):
    extra_cflags += ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-O1", "-g"]
    extra_ldflags += ["-fsanitize=address,undefined"]

ext = Extension(
    "denet._denet",
    # csrc/python (bindings), csrc/core (C-only session), csrc/ebpf (BPF user side),
    # csrc/symbolize (naming user and kernel frames).
    # Headers are named from csrc/ ("core/writer.h") and shared BPF headers from the
    # top ("bpf/tracked.h"), so a user-side file and a BPF header never share a name.
    sources=sorted(glob.glob("csrc/*/*.c")),
    depends=sorted(glob.glob("csrc/*/*.h") + glob.glob("bpf/*.h")),
    include_dirs=["csrc", "."],
    libraries=["bpf", "elf", "dw", "z"],
    extra_compile_args=extra_cflags,
    extra_link_args=extra_ldflags,
)

setup(ext_modules=[ext], cmdclass={"build_ext": BuildExtWithBpf})
