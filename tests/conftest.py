"""Shared fixtures: workload helpers and the eBPF gate.

eBPF tests skip only when we are not privileged AND DENET_REQUIRE_EBPF is unset; CI sets
it, so there a missing eBPF is a failure, never a silent skip."""
import os
import sys
import textwrap

import pytest

import denet

PY = sys.executable

# `make asan` runs the suite with AddressSanitizer preloaded: its allocator quarantines
# freed memory and is inherited by child processes, so RSS-exact checks cannot hold there.
UNDER_ASAN = bool(os.environ.get("DENET_TEST_ASAN"))
rss_exact = pytest.mark.skipif(UNDER_ASAN, reason="RSS is not meaningful under AddressSanitizer")

# GPU monitoring is on by default wherever NVIDIA's libnvidia-ml.so.1 loads. The suite's
# expectations (a flat sample is exactly the schema fields, say) must not depend on the
# machine having a GPU, so it runs without the real library; tests/test_gpu.py loads a
# fake one through DENET_NVML_LIBRARY. DENET_TEST_REAL_NVML=1 keeps the real library.
if not os.environ.get("DENET_TEST_REAL_NVML"):
    os.environ["DENET_NVML_LIBRARY"] = "/nonexistent/denet-tests/libnvidia-ml.so.1"


def py_cmd(code):
    """argv running a Python snippet in a fresh interpreter."""
    return [PY, "-c", textwrap.dedent(code)]


@pytest.fixture
def require_ebpf():
    ok, reason = denet.ebpf_available()
    if ok:
        return
    if os.environ.get("DENET_REQUIRE_EBPF") or os.geteuid() == 0:
        pytest.fail(f"eBPF is required here but unavailable: {reason}")
    pytest.skip(f"eBPF unavailable (not privileged): {reason}")


def median(values):
    values = sorted(values)
    n = len(values)
    assert n, "no values"
    return values[n // 2] if n % 2 else (values[n // 2 - 1] + values[n // 2]) / 2


def require_module(name, apt_package):
    """Import a module the tests need; `make` installs it, so its absence is a failure
    (never a silent skip) that says how to fix it."""
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError as e:
        pytest.fail(f"{name} is needed by this test but cannot be imported ({e}); "
                    f"run `make test` (it installs {apt_package}) or apt-get install {apt_package}")
