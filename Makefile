# denet: `make demo` and `make test` are all a fresh Debian 12 machine needs.
VENV      := .venv
PY        := $(VENV)/bin/python
APT_PKGS  := clang llvm libbpf-dev bpftool libelf-dev libdw-dev zlib1g-dev python3-dev python3-venv \
             python3-pytest python3-psutil python3-setuptools iproute2 \
             python3-ipython python3-ipykernel python3-nbclient python3-nbformat \
             python3-pandas python3-matplotlib python3-pil chromium fonts-dejavu-core
BENCH_PKGS := strace linux-perf libbpf-tools
KERNEL_PKGS := qemu-system-x86 busybox-static
# Debian 12 kernels booted by test-kernels: the stock 6.1 and bookworm's 6.12.
KERNELS   ?= linux-image-amd64 linux-image-6.12-amd64
STAMP     := $(VENV)/.denet-installed
JUPYTER_KERNEL := $(VENV)/share/jupyter/kernels/denet/kernel.json
SOURCES   := $(wildcard csrc/*/*.c csrc/*/*.h bpf/*.c bpf/*.h bpf/vmlinux/*/vmlinux.h) setup.py pyproject.toml

.PHONY: all deps venv build jupyter-kernel test test-c test-kernels vmlinux-h demo bench bench-writer asan valgrind clean

all: build jupyter-kernel

# Installs the Debian packages that are missing (apt-get update first).
deps:
	@missing=""; for p in $(APT_PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

$(PY): | deps
	/usr/bin/python3 -m venv --system-site-packages $(VENV)

$(STAMP): $(PY) $(SOURCES)
	$(PY) -m pip install --no-build-isolation --no-deps -q -e .
	@touch $@

build: deps $(STAMP)

# A Jupyter kernel "Python (denet .venv)" that runs .venv/bin/python (Debian's default
# kernel runs /usr/bin/python3, which cannot import denet).
jupyter-kernel: $(JUPYTER_KERNEL)

$(JUPYTER_KERNEL): $(STAMP)
	PYDEVD_DISABLE_FILE_VALIDATION=1 $(PY) -m ipykernel install --sys-prefix --name denet --display-name "Python (denet .venv)" >/dev/null
	@echo "Jupyter kernel 'denet' registered: $(JUPYTER_KERNEL)"

test: build jupyter-kernel test-c
	DENET_REQUIRE_EBPF=$${DENET_REQUIRE_EBPF:-} $(PY) -m pytest -q

test-c:
	$(MAKE) -s -C tests/c

# The eBPF checks (tests/kernels/test_kernel.py) on this host's kernel and on each of
# $(KERNELS), booted under qemu (root; .deb cached in build/kernels/). TEST_KERNELS_ARGS=--all
# adds the suite's own eBPF tests.
test-kernels: build
	@missing=""; for p in $(KERNEL_PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    -o DPkg::Lock::Timeout=300 $$missing; \
	fi
	$(PY) tests/kernels/run.py $(addprefix --kernel ,$(KERNELS)) $(TEST_KERNELS_ARGS)

# Regenerates the vendored vmlinux.h of this host's architecture from its BTF.
vmlinux-h:
	@arch=$$(uname -m | sed 's/x86_64/x86/; s/aarch64/arm64/'); mkdir -p bpf/vmlinux/$$arch; \
	{ echo "/* Linux $$(uname -r) ($$(uname -m)) BTF, dumped with: bpftool btf dump file /sys/kernel/btf/vmlinux format c */"; \
	  bpftool btf dump file /sys/kernel/btf/vmlinux format c; } > bpf/vmlinux/$$arch/vmlinux.h.tmp && \
	mv bpf/vmlinux/$$arch/vmlinux.h.tmp bpf/vmlinux/$$arch/vmlinux.h && echo "wrote bpf/vmlinux/$$arch/vmlinux.h"

# The main job: the denet command monitoring the bundled workload (live status line on a
# terminal, summary table, eBPF syscall figures when run as root), then the same through
# the Python API, printing one line per sample.
demo: build
	@EBPF=""; [ "$$(id -u)" = 0 ] && EBPF="--enable-ebpf"; \
	  echo "== denet $$EBPF run -- python examples/workload.py"; \
	  $(VENV)/bin/denet $$EBPF run -- $(PY) examples/workload.py
	@echo; echo "== the same through the Python API (examples/demo.py)"
	$(PY) examples/demo.py

bench: build
	@missing=""; for p in $(BENCH_PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing || true; fi
	$(PY) bench/sampling.py
	@$(MAKE) -s bench-writer
	@if [ -f bench/active.py ]; then $(PY) bench/active.py; fi
	@if [ -f bench/syscalls.py ]; then $(PY) bench/syscalls.py; fi
	@if [ -f bench/offcpu.py ]; then $(PY) bench/offcpu.py; fi
	@if [ -f bench/sock.py ]; then $(PY) bench/sock.py; fi

# The output writers alone (bench/writer.c), linked with the C-only parts of the extension
# as tests/c links them.
WRITER_BENCH := build/bench_writer
$(WRITER_BENCH): bench/writer.c $(STAMP)
	@mkdir -p build
	gcc -std=c11 -Wall -Wextra -Werror -O2 -D_GNU_SOURCE -Icsrc -I. -Ibuild/bpf -o $@ bench/writer.c \
	  $(wildcard csrc/core/*.c csrc/ebpf/*.c csrc/symbolize/*.c) -lbpf -lelf -ldw -lz -lpthread -lm

bench-writer: $(WRITER_BENCH)
	./$(WRITER_BENCH)

# The test suite's C paths under AddressSanitizer + UBSan (leak checking stays with the
# RSS-flat leak test: CPython's own allocations would drown LeakSanitizer).
asan: build
	rm -rf build/asan && mkdir -p build/asan
	DENET_SANITIZE=1 $(PY) setup.py -q build_ext --build-lib build/asan --build-temp build/asan/tmp
	cp -r denet build/asan/ && cp build/asan/denet/_denet*.so build/asan/denet/ 2>/dev/null || true
	cd build/asan && cp denet/_denet*.so denet/ 2>/dev/null; \
	  LD_PRELOAD="$$(gcc -print-file-name=libasan.so) $$(gcc -print-file-name=libubsan.so)" \
	  ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	  PYTHONPATH=$(CURDIR)/build/asan DENET_TEST_ASAN=1 $(CURDIR)/$(PY) -m pytest -q -p no:cacheprovider $(CURDIR)/tests
	$(MAKE) -s -C tests/c asan

clean:
	rm -rf build $(VENV) denet/_denet*.so *.egg-info tests/c/build
