"""Shared fixtures: workload helpers and the eBPF gate.

eBPF tests skip only when we are not privileged AND DENET_REQUIRE_EBPF is unset; CI sets
it, so there a missing eBPF is a failure, never a silent skip."""
import os
import select
import sys
import textwrap
import time

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


def must_run():
    """Whether a test that needs privilege must fail rather than skip when it cannot run:
    as root, or when DENET_REQUIRE_EBPF is set (CI)."""
    return bool(os.environ.get("DENET_REQUIRE_EBPF")) or os.geteuid() == 0


@pytest.fixture
def require_ebpf():
    ok, reason = denet.ebpf_available()
    if ok:
        return
    if must_run():
        pytest.fail(f"eBPF is required here but unavailable: {reason}")
    pytest.skip(f"eBPF unavailable (not privileged): {reason}")


def ebpf_monitor(cmd_or_pid, **kw):
    """A monitor with eBPF on that fails the test at once when eBPF did not load: every
    eBPF figure would otherwise silently be a /proc one (or missing)."""
    kw.setdefault("quiet", True)
    if isinstance(cmd_or_pid, int):
        mon = denet.ProcessMonitor.from_pid(cmd_or_pid, enable_ebpf=True, **kw)
    else:
        mon = denet.ProcessMonitor(cmd_or_pid, enable_ebpf=True, **kw)
    assert mon.ebpf_error is None, mon.ebpf_error
    return mon


def monitor(cmd_or_pid, ebpf=False, **kw):
    """ProcessMonitor(cmd) or from_pid(pid); with ebpf=True, as ebpf_monitor."""
    if ebpf:
        return ebpf_monitor(cmd_or_pid, **kw)
    if isinstance(cmd_or_pid, int):
        return denet.ProcessMonitor.from_pid(cmd_or_pid, **kw)
    return denet.ProcessMonitor(cmd_or_pid, **kw)


class Steps:
    """Lock-step control of a workload, so that no test guesses how long a start-up takes.

    The workload says lines on its stdout, a pipe read here (``expect``), and waits for
    lines on a FIFO written here (``send``). A Python workload starts with ``prelude``,
    which defines ``say(*words)``, ``hear()`` and ``execd(pid, *argv)`` (waits until a
    child's exec is complete). Start it with ``stdout=steps.w`` (a
    ProcessMonitor or a Popen), then call ``started()``."""

    def __init__(self, tmp_path):
        self.fifo = str(tmp_path / "steps.fifo")
        os.mkfifo(self.fifo)
        self.r, self.w = os.pipe()
        self.buf = b""
        self.wfd = -1

    @property
    def prelude(self):
        return textwrap.dedent(f"""\
            import os as _os
            def say(*words):
                _os.write(1, (" ".join(map(str, words)) + "\\n").encode())
            _ctl = []
            def hear():
                if not _ctl:
                    _ctl.append(open({self.fifo!r}))
                return _ctl[0].readline().strip()
            def execd(pid, *argv):
                # Popen returns before the exec is complete (the new command line is
                # set late in execve): wait until /proc shows it.
                import time as _time
                want = ("\\0".join(argv) + "\\0").encode()
                while True:
                    try:
                        with open("/proc/%d/cmdline" % pid, "rb") as f:
                            if f.read() == want:
                                return
                    except OSError:
                        pass
                    _time.sleep(0.005)
            """)

    def started(self):
        os.close(self.w)
        self.w = -1

    def expect(self, timeout=60):
        """The next line the workload says (without the newline)."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.r], [], [], left)[0]:
                raise AssertionError(f"the workload said nothing for {timeout} s")
            chunk = os.read(self.r, 4096)
            if not chunk:
                raise AssertionError(f"the workload closed its stdout (said {self.buf!r})")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode()

    def send(self, line="go", timeout=60):
        """Writes a line for the next process that listens (one listener at a time)."""
        deadline = time.monotonic() + timeout
        while True:
            try:  # only once a listener has opened its end (it may still be starting)
                if self.wfd < 0:
                    self.wfd = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)
                os.write(self.wfd, (line + "\n").encode())
                return
            except OSError:  # ENXIO: nobody listens yet; EPIPE: the last listener left
                if self.wfd >= 0:
                    os.close(self.wfd)
                    self.wfd = -1
                if time.monotonic() > deadline:
                    raise AssertionError(f"the workload never listened for {line!r}")
                time.sleep(0.01)

    def close(self):
        if self.wfd < 0:  # a workload still waiting to open its end reads EOF instead
            try:
                self.wfd = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:
                pass
        for fd in (self.r, self.w, self.wfd):
            if fd >= 0:
                os.close(fd)
        self.r = self.w = self.wfd = -1


@pytest.fixture
def steps(tmp_path):
    s = Steps(tmp_path)
    yield s
    s.close()


def wait_until(pred, timeout=10.0, every=0.05):
    """Polls pred() until it is true or timeout passes; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(every)


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
