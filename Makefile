# denet: `make demo` and `make test` are all a fresh Debian 12 machine needs.
VENV      := .venv
PY        := $(VENV)/bin/python
APT_PKGS  := clang llvm libbpf-dev bpftool libelf-dev libdw-dev zlib1g-dev python3-dev python3-venv \
             python3-pytest python3-psutil python3-setuptools
BENCH_PKGS := strace linux-perf libbpf-tools
STAMP     := $(VENV)/.denet-installed
SOURCES   := $(wildcard csrc/*/*.c csrc/*/*.h bpf/*.c bpf/*.h) setup.py pyproject.toml

.PHONY: all deps venv build test test-c demo bench asan valgrind clean

all: build

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

test: build test-c
	DENET_REQUIRE_EBPF=$${DENET_REQUIRE_EBPF:-} $(PY) -m pytest -q

test-c:
	$(MAKE) -s -C tests/c

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
	@if [ -f bench/syscalls.py ]; then $(PY) bench/syscalls.py; fi
	@if [ -f bench/offcpu.py ]; then $(PY) bench/offcpu.py; fi

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
