#!/usr/bin/env python3
"""Kernel matrix: runs tests/kernels/test_kernel.py on this host's kernel and, under
qemu-system-x86_64, on Debian kernels (default: Debian 12's own, linux-image-amd64, 6.1),
then prints one table of all.

Each guest kernel comes from Debian's archive (apt-get download, cached in
build/kernels/). It boots a busybox initramfs built here whose /init loads the 9p
modules of that same kernel package, mounts this host's root filesystem read-only over
virtio-9p, and runs the real built extension's tests in it (chroot), with a second,
writable 9p share for the results. The generic amd64 flavour is booted because the
-cloud-amd64 one has no 9p (CONFIG_NET_9P is not set). No KVM is needed (TCG); each
kernel runs under a hard timeout.

Usage: run.py [--kernel PKG]... [--no-host] [--all] [--timeout S] [-- pytest args]
"""
import argparse
import gzip
import io
import lzma
import os
import platform
import re
import selectors
import shlex
import shutil
import stat
import struct
import subprocess
import sys
import tarfile
import time
import xml.etree.ElementTree as ET

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CACHE = os.path.join(ROOT, "build", "kernels")
TEST = "tests/kernels/test_kernel.py"
# --all: the suite's own eBPF tests too (about 3 min per guest under TCG).
ALL_EBPF = ["tests/test_ebpf_syscalls.py", "tests/test_task_iter.py", "tests/test_ground_truth.py",
            "-k", "kernel or ebpf or iterator or exit_tracepoint"]
# The Debian 12 meta-package whose dependency names the current kernel package.
DEFAULT_META = "linux-image-amd64"
# Modules that /init loads (with their dependencies) to mount the host over 9p.
GUEST_MODULES = ["virtio_pci", "9pnet_virtio", "9p"]
MODULE_DIRS = ("kernel/drivers/virtio/", "kernel/net/9p/", "kernel/fs/9p/", "kernel/fs/netfs/",
               "kernel/fs/fscache/")
# Table columns: test function -> heading.
CHECKS = [
    ("test_objects_load", "objects load"),
    ("test_programs_attach", "attach"),
    ("test_tracker_fork_exit_cpu", "fork+exit CPU"),
    ("test_tracker_exit_peak_rss", "exit peak RSS"),
    ("test_tracker_exec_peak_rss", "exec'd peak RSS"),
    ("test_tracker_exec_peak_rss_is_not_the_forker", "not the forker's RSS"),
    ("test_task_iter_rss_is_statm", "iter RSS=statm"),
    ("test_syscall_counter_exact", "getppid count"),
    ("test_sock_bytes", "sock bytes"),
    ("test_iter_switches_and_cpu_split", "iter ctx switches, user/sys"),
    ("test_iter_cpu_busy_and_idle", "iter CPU, busy/idle"),
    ("test_offcpu_sleep_time", "off-CPU sleep"),
]
# What a guest kernel prints when a CPU is stuck or the kernel hit a bug; any of it fails
# that kernel.
KERNEL_TROUBLE = re.compile(r"soft lockup|hard LOCKUP|rcu: INFO|detected stalls? on CPU|"
                            r"blocked for more than \d+ seconds|BUG:|Oops|WARNING: CPU")


def log(msg):
    print(f"[test-kernels] {msg}", flush=True)


class Failure(Exception):
    pass


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, text=True, capture_output=True, **kw).stdout


# --- the kernel package -------------------------------------------------------------

def resolve_package(name):
    """A meta-package (linux-image-amd64, linux-image-6.12-amd64) -> the kernel package it
    depends on now; a kernel package -> itself. A cached .deb is used when apt cannot
    answer (offline)."""
    try:
        out = sh(["apt-cache", "depends", name])
    except (OSError, subprocess.CalledProcessError) as e:
        debs = os.path.join(CACHE, "debs")
        cached = sorted(os.listdir(debs)) if os.path.isdir(debs) else []
        if name == DEFAULT_META and len(cached) == 1:
            return cached[0].split("_")[0]
        raise Failure(f"apt-cache depends {name} failed: {e}")
    deps = re.findall(r"Depends: (linux-image-\d\S*)", out)
    return resolve_package(deps[0]) if deps else name


def download(pkg):
    """The .deb of pkg, downloaded once into build/kernels/debs/."""
    debs = os.path.join(CACHE, "debs")
    os.makedirs(debs, exist_ok=True)
    cached = [f for f in os.listdir(debs) if f.startswith(pkg + "_") and f.endswith(".deb")]
    if cached:
        return os.path.join(debs, sorted(cached)[-1])
    log(f"apt-get download {pkg}")
    for attempt in (1, 2):
        r = subprocess.run(["apt-get", "download", pkg], cwd=debs, text=True, capture_output=True)
        if r.returncode == 0:
            break
        if attempt == 1:  # stale package lists: refresh once
            log(f"apt-get download failed ({r.stderr.strip().splitlines()[-1:]}); apt-get update")
            subprocess.run(["apt-get", "update", "-qq"], text=True)
    else:
        raise Failure(f"apt-get download {pkg} failed:\n{r.stderr}")
    got = [f for f in os.listdir(debs) if f.startswith(pkg + "_") and f.endswith(".deb")]
    if not got:
        raise Failure(f"apt-get download {pkg} left no .deb in {debs}")
    return os.path.join(debs, sorted(got)[-1])


def extract(deb):
    """vmlinuz and the modules /init needs, from the .deb (only those members)."""
    dest = os.path.join(CACHE, os.path.basename(deb)[:-len(".deb")])
    done = os.path.join(dest, ".extracted")
    if os.path.exists(done):
        return dest
    shutil.rmtree(dest, ignore_errors=True)
    os.makedirs(dest)
    fsys = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", deb], stdout=subprocess.PIPE)
    with tarfile.open(fileobj=fsys.stdout, mode="r|") as tar:
        for m in tar:
            name = m.name.lstrip("./")
            keep = (re.match(r"boot/(vmlinuz|config)-", name)
                    or re.match(r"(usr/)?lib/modules/[^/]+/modules\.builtin$", name)
                    or (re.match(r"(usr/)?lib/modules/[^/]+/", name)
                        and any(d in name for d in MODULE_DIRS)))
            if keep and m.isfile():
                m.name = name
                tar.extract(m, dest)
    if fsys.wait() != 0:
        raise Failure(f"dpkg-deb --fsys-tarfile {deb} failed")
    open(done, "w").close()
    return dest


def kernel_files(tree):
    boot = os.path.join(tree, "boot")
    vmlinuz = [f for f in os.listdir(boot) if f.startswith("vmlinuz-")]
    if len(vmlinuz) != 1:
        raise Failure(f"expected one vmlinuz in {boot}, found {vmlinuz}")
    release = vmlinuz[0][len("vmlinuz-"):]
    for base in ("lib/modules", "usr/lib/modules"):
        mods = os.path.join(tree, base, release)
        if os.path.isdir(mods):
            return os.path.join(boot, vmlinuz[0]), release, mods
    raise Failure(f"no lib/modules/{release} in {tree}")


def modinfo_depends(data):
    m = re.search(rb"(?:^|\0)depends=([^\0]*)", data)
    return [d for d in m.group(1).decode().split(",") if d] if m else []


def module_order(mods, wanted):
    """Load order (dependencies first) of wanted and what they depend on, as
    (name, bytes) pairs; builtin modules are skipped."""
    builtin = set()
    path = os.path.join(mods, "modules.builtin")
    if os.path.exists(path):
        builtin = {os.path.basename(l.strip()).split(".ko")[0].replace("-", "_")
                   for l in open(path)}
    found = {}
    for dirpath, _, files in os.walk(mods):
        for f in files:
            if ".ko" in f:
                found[f.split(".ko")[0].replace("-", "_")] = os.path.join(dirpath, f)
    order, seen = [], set()

    def visit(name, chain):
        name = name.replace("-", "_")
        if name in seen or name in builtin:
            return
        if name not in found:
            raise Failure(f"module {name} (needed by {' <- '.join(chain) or 'init'}) is neither "
                          f"builtin nor in the package's {', '.join(MODULE_DIRS)}")
        data = open(found[name], "rb").read()
        if found[name].endswith(".xz"):
            data = lzma.decompress(data)
        elif found[name].endswith(".gz"):
            data = gzip.decompress(data)
        elif found[name].endswith(".zst"):
            raise Failure(f"{found[name]}: zstd-compressed modules are not supported here")
        seen.add(name)
        for dep in modinfo_depends(data):
            visit(dep, chain + [name])
        order.append((name, data))

    for w in wanted:
        visit(w, [])
    return order


# --- the initramfs --------------------------------------------------------------------

def cpio_newc(entries):
    """An uncompressed newc cpio archive of (path, mode, data) entries."""
    out = io.BytesIO()
    ino = 1
    for path, mode, data in entries + [("TRAILER!!!", 0, b"")]:
        name = path.encode() + b"\0"
        hdr = "070701" + "".join(f"{v:08x}" for v in (
            ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name), 0))
        out.write(hdr.encode() + name)
        out.write(b"\0" * (-(110 + len(name)) % 4))
        out.write(data)
        out.write(b"\0" * (-len(data) % 4))
        ino += 1
    return out.getvalue()


INIT = r"""#!/bin/busybox sh
# denet kernel matrix: guest /init. Loads 9p, mounts the host's root read-only at /host,
# runs /tmp/out/guest.sh there (chroot) and powers off. Every step says what failed.
B=/bin/busybox
say() { echo "DENET-GUEST: $*"; }
die() { say "FAILED: $*"; $B sync; $B poweroff -f; }
$B mkdir -p /proc /sys /dev /host
$B mount -t proc proc /proc || die "mount /proc"
$B mount -t sysfs sys /sys || die "mount /sys"
$B mount -t devtmpfs dev /dev || die "mount /dev"
say "kernel $($B uname -r)"
for m in $($B cat /modules.order); do
    $B insmod /modules/$m.ko || die "insmod $m"
done
$B mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=512000 hostroot /host \
    || die "mount of the host root over 9p"
for d in proc sys dev tmp run; do [ -d /host/$d ] || die "/host/$d missing"; done
$B mount -t proc proc /host/proc && $B mount -t sysfs sys /host/sys \
    && $B mount -t devtmpfs dev /host/dev && $B mount -t tmpfs tmp /host/tmp \
    && $B mount -t tmpfs run /host/run || die "mounts inside /host"
$B mount -t bpf bpf /host/sys/fs/bpf || die "mount bpffs"
# The checkout, at the same path as on the host: it may sit under /tmp or /run, which
# the guest's own tmpfs mounts above hide (CI clones anywhere).
SRC=$($B cat /srcpath)
$B mkdir -p "/host$SRC" 2>/dev/null
$B mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=512000 src "/host$SRC" \
    || die "mount of the source tree $SRC"
$B mkdir -p /host/dev/shm /host/tmp/out && $B mount -t tmpfs shm /host/dev/shm
$B mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 out /host/tmp/out \
    || die "mount of the results share"
[ -f /host/tmp/out/guest.sh ] || die "no guest.sh in the results share"
say "running guest.sh"
$B chroot /host /bin/sh /tmp/out/guest.sh
say "guest.sh exited $?"
$B sync
$B umount /host/tmp/out
$B poweroff -f
"""


def has_interpreter(elf):
    """Whether a 64-bit little-endian ELF has a PT_INTERP (is dynamically linked)."""
    if elf[:4] != b"\x7fELF" or elf[4] != 2:
        raise Failure("busybox is not a 64-bit ELF")
    phoff, = struct.unpack_from("<Q", elf, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", elf, 0x36)
    return any(struct.unpack_from("<I", elf, phoff + i * phentsize)[0] == 3 for i in range(phnum))


def build_initramfs(mods, out_path):
    order = module_order(mods, GUEST_MODULES)
    entries = [("bin", stat.S_IFDIR | 0o755, b""), ("modules", stat.S_IFDIR | 0o755, b"")]
    busybox = shutil.which("busybox") or "/bin/busybox"
    try:
        data = open(busybox, "rb").read()
    except OSError as e:
        raise Failure(f"no busybox ({e}); install busybox-static")
    if has_interpreter(data):
        raise Failure(f"{busybox} is dynamically linked; install busybox-static")
    entries.append(("bin/busybox", stat.S_IFREG | 0o755, data))
    entries.append(("init", stat.S_IFREG | 0o755, INIT.encode()))
    entries.append(("srcpath", stat.S_IFREG | 0o644, ROOT.encode()))
    entries.append(("modules.order", stat.S_IFREG | 0o644,
                    "".join(n + "\n" for n, _ in order).encode()))
    for name, blob in order:
        entries.append((f"modules/{name}.ko", stat.S_IFREG | 0o644, blob))
    with open(out_path, "wb") as f:
        f.write(cpio_newc(entries))
    return [n for n, _ in order]


# --- running the checks -----------------------------------------------------------------

GUEST_SH = """#!/bin/sh
# Runs inside the guest, chrooted into the host's root (read-only; /tmp is the guest's).
cd {root} || exit 90
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/tmp LANG=C.UTF-8
export DENET_REQUIRE_EBPF=1 PYTHONDONTWRITEBYTECODE=1
uname -r > /tmp/out/uname
ip link set lo up || echo "DENET-GUEST: no loopback network: socket checks will fail"
( {python} -m pytest -p no:cacheprovider -o addopts= -o junit_family=legacy -rfEs -v --junitxml=/tmp/out/junit.xml {args}
  echo $? > /tmp/out/rc ) 2>&1 | tee /tmp/out/pytest.log
dmesg > /tmp/out/dmesg.txt
"""


def pytest_args(extra):
    return [TEST] + list(extra)


def run_host(extra, timeout):
    out = os.path.join(CACHE, "host")
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    junit = os.path.join(out, "junit.xml")
    env = dict(os.environ, DENET_REQUIRE_EBPF="1")
    log(f"host kernel {platform.release()}: pytest {shlex.join(pytest_args(extra))}")
    t0 = time.monotonic()
    try:
        r = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-o",
                            "addopts=", "-o", "junit_family=legacy", "-rfEs", "-v",
                            f"--junitxml={junit}"] + pytest_args(extra),
                           cwd=ROOT, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise Failure(f"host: pytest killed after {timeout} s")
    log(f"host: pytest exited {r.returncode} after {time.monotonic() - t0:.0f} s")
    return platform.release(), junit, r.returncode


def qemu_accel():
    if os.access("/dev/kvm", os.R_OK | os.W_OK):
        return ["-accel", "kvm", "-cpu", "host"]
    # Both vCPUs on one host thread, in turn. With a thread each (thread=multi), QEMU 7.2
    # (Debian 12) wedged 6.1 guests when a tracepoint in __schedule() was switched off (by
    # a BPF link closing, or through tracefs with no BPF at all): one vCPU kept executing
    # the int3 that Linux had already patched back out of memory, looping in the int3
    # handler with interrupts off, while the other waited forever for it to take the
    # patching IPI (soft lockups, RCU stalls). See README, "Kernels verified".
    return ["-accel", "tcg,thread=single", "-cpu", "max"]


def run_guest(meta, extra, timeout):
    pkg = resolve_package(meta)
    deb = download(pkg)
    tree = extract(deb)
    vmlinuz, release, mods = kernel_files(tree)
    work = os.path.join(CACHE, "guest-" + release)
    out = os.path.join(work, "out")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(out)
    initrd = os.path.join(work, "initramfs.cpio")
    loaded = build_initramfs(mods, initrd)
    with open(os.path.join(out, "guest.sh"), "w") as f:
        f.write(GUEST_SH.format(root=shlex.quote(ROOT), python=shlex.quote(sys.executable),
                                args=shlex.join(pytest_args(extra))))
    qemu = shutil.which("qemu-system-x86_64")
    if not qemu:
        raise Failure("qemu-system-x86_64 not found; install qemu-system-x86")
    cmd = [qemu, "-nodefaults", "-no-user-config", "-display", "none", "-monitor", "none",
           "-serial", "stdio", "-no-reboot", *qemu_accel(), "-smp", "2", "-m", "2048",
           "-kernel", vmlinuz, "-initrd", initrd,
           "-append", "console=ttyS0 panic=-1 quiet loglevel=3",
           "-fsdev", "local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap",
           "-device", "virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot",
           "-fsdev", f"local,id=src,path={ROOT},security_model=none,readonly=on,multidevs=remap",
           "-device", "virtio-9p-pci,fsdev=src,mount_tag=src",
           "-fsdev", f"local,id=out,path={out},security_model=none",
           "-device", "virtio-9p-pci,fsdev=out,mount_tag=out"]
    log(f"{pkg} ({os.path.basename(deb)}): booting {release} under qemu "
        f"({' '.join(qemu_accel()[:2])}), modules {', '.join(loaded)}; timeout {timeout} s")
    console = os.path.join(work, "console.log")
    t0 = time.monotonic()
    tail = []
    with open(console, "w") as logf:
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT)
        os.set_blocking(p.stdout.fileno(), False)
        buf = b""
        sel = selectors.DefaultSelector()
        sel.register(p.stdout, selectors.EVENT_READ)
        timed_out = False
        while True:
            left = timeout - (time.monotonic() - t0)
            if left <= 0:
                timed_out = True
                p.kill()
                break
            if not sel.select(timeout=min(left, 1.0)):
                if p.poll() is not None:
                    break
                continue
            chunk = p.stdout.read()
            if not chunk:
                if p.poll() is not None:
                    break
                continue
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for line in lines:
                text = line.decode(errors="replace").rstrip("\r")
                logf.write(text + "\n")
                print(f"  guest| {text}", flush=True)
                tail = (tail + [text])[-30:]
        rc = p.wait()
    elapsed = time.monotonic() - t0
    if timed_out:
        raise Failure(f"guest {release} timed out after {timeout} s (qemu killed); console in "
                      f"{console}; last lines:\n" + "\n".join(tail))
    log(f"guest {release}: qemu exited {rc} after {elapsed:.0f} s")
    junit = os.path.join(out, "junit.xml")
    rcfile = os.path.join(out, "rc")
    if not os.path.exists(junit) or not os.path.exists(rcfile):
        raise Failure(f"guest {release} left no results (qemu exit {rc}); console in {console}; "
                      "last lines:\n" + "\n".join(tail))
    uname = open(os.path.join(out, "uname")).read().strip()
    version = os.path.basename(deb)[len(pkg) + 1:].split("_")[0]
    # The console shows only the most urgent messages (loglevel=3): read the whole log too.
    logs = [console] + [p for p in [os.path.join(out, "dmesg.txt")] if os.path.exists(p)]
    trouble = sorted({l.strip() for p in logs for l in open(p, errors="replace")
                      if KERNEL_TROUBLE.search(l)})
    return f"{uname} (Debian {version})", junit, int(open(rcfile).read()), trouble


# --- the table ----------------------------------------------------------------------

def outcomes(junit):
    """{test function: [(case id, outcome, message)]} from a junit XML file."""
    res = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        name = case.get("name")
        fn = name.split("[")[0]
        outcome, msg = "pass", ""
        # a passing check may say what it showed (record_property "cell"): "n/a" for an
        # object this kernel cannot load by design, "null (no tracepoint)"
        cell = next((p.get("value") for p in case.iter("property") if p.get("name") == "cell"), None)
        if cell:
            msg = cell
        for tag, word in (("failure", "FAIL"), ("error", "ERROR"), ("skipped", "skip")):
            el = case.find(tag)
            if el is not None:
                outcome, msg = word, (el.get("message") or "").splitlines()[0][:200]
                break
        res.setdefault(fn, []).append((name, outcome, msg))
    return res


def table(rows):
    others = any(set(res) - {fn for fn, _ in CHECKS} for _, res in rows)
    head = ["kernel"] + [h for _, h in CHECKS] + (["other eBPF tests"] if others else [])
    body, problems, ok = [], [], True
    for kernel, res in rows:
        cells = [kernel]
        for fn, _ in CHECKS:
            cases = res.get(fn, [])
            passed = sum(1 for _, o, _ in cases if o == "pass")
            notes = sorted({m for _, o, m in cases if o == "pass" and m})
            if not cases:
                cell, good = "missing", False
            elif passed == len(cases):
                if len(cases) == 1:
                    cell = notes[0] if notes else "pass"
                else:
                    na = sum(1 for _, o, m in cases if o == "pass" and m == "n/a")
                    cell = f"{passed - na}/{len(cases)} pass" + (f", {na} n/a" if na else "")
                good = True
            else:
                bad = [c for c in cases if c[1] != "pass"]
                cell = bad[0][1] if len(cases) == 1 else f"{passed}/{len(cases)} pass"
                good = False
                problems += [f"{kernel}: {n}: {o} {m}" for n, o, m in bad]
            ok &= good
            cells.append(cell)
        extra = [c for fn in sorted(set(res) - {fn for fn, _ in CHECKS}) for c in res[fn]]
        for n, o, m in extra:
            if o != "pass":
                ok = False
                problems.append(f"{kernel}: {n}: {o} {m}")
        if others:
            cells.append(f"{sum(o == 'pass' for _, o, _ in extra)}/{len(extra)} pass")
        body.append(cells)
    widths = [max(len(r[i]) for r in [head] + body) for i in range(len(head))]
    fmt = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |"
    lines = [fmt(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|"] + [fmt(r) for r in body]
    return "\n".join(lines), problems, ok


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kernel", action="append",
                    help=f"Debian kernel package (or meta-package) to boot; default {DEFAULT_META}")
    ap.add_argument("--no-host", action="store_true", help="skip the run on this host's kernel")
    ap.add_argument("--all", action="store_true",
                    help="also run the suite's own eBPF tests (slower: minutes per guest)")
    ap.add_argument("--timeout", type=int, default=240,
                    help="hard limit per kernel (qemu boot and tests, or the host's pytest), s")
    ap.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    a = ap.parse_args()
    if os.geteuid() != 0:
        print("test-kernels needs root (BPF, and qemu's 9p export of /)", file=sys.stderr)
        return 2
    if platform.machine() != "x86_64":
        print("test-kernels boots x86_64 Debian kernels; this host is " + platform.machine(),
              file=sys.stderr)
        return 2
    extra = (ALL_EBPF if a.all else []) + a.pytest_args
    rows, failures = [], []
    if not a.no_host:
        try:
            kernel, junit, rc = run_host(extra, a.timeout)
            if os.path.exists(junit):
                rows.append((kernel + " (host)", outcomes(junit)))
            else:
                failures.append(f"host: pytest exited {rc} without results")
        except Failure as e:
            failures.append(str(e))
    for meta in a.kernel or [DEFAULT_META]:
        try:
            kernel, junit, rc, trouble = run_guest(meta, extra, a.timeout)
            if trouble:
                failures.append(f"{kernel}: the kernel reported trouble:\n    "
                                + "\n    ".join(trouble[:10]))
            rows.append((kernel, outcomes(junit)))
            if rc not in (0, 1):
                failures.append(f"{kernel}: pytest exited {rc}")
        except Failure as e:
            rows.append((f"{meta}: no result", {}))
            failures.append(f"{meta}: {e}")
    text, problems, ok = table(rows)
    print("\nKernel matrix (tests/kernels/test_kernel.py):\n" + text, flush=True)
    for p in problems + failures:
        print("  " + p)
    if ok and not failures and rows:
        print("test-kernels: every check passed on every kernel")
        return 0
    print("test-kernels: FAILED")
    return 1


if __name__ == "__main__":
    sys.exit(main())
