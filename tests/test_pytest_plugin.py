"""The pytest plugin as users meet it: a generated test file run by pytest in a subprocess,
the plugin loaded through its entry point, outcomes read from JUnit XML (pytest's own
record, not the plugin's), figures from --denet-report.

Ground truth: a child that loops on time.process_time() for 1.5 s spends at least 1.5 s
of CPU; `bytearray(b"x") * N` touches N bytes; os.getppid() is one system call each
time (glibc does not cache it); time.sleep(1) takes at least 1 s of wall time."""
import json
import os
import re
import shutil
import subprocess
import tempfile
import textwrap
import time
import xml.etree.ElementTree as ET

import pytest

import denet
from denet import pytest_plugin
from denet._measure import OFFCPU_UNAVAILABLE, Measurement

from conftest import PY, UNDER_ASAN, rss_exact

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

BUDGET_TESTS = '''
import os, subprocess, sys, time
import pytest

BUSY = "import time\\nt = time.process_time()\\nwhile time.process_time() - t < {secs}: pass"
GETPPID = "import os\\nfor _ in range({n}): os.getppid()"

@pytest.mark.denet_budget(peak_rss_mb=150)
def test_rss_over():
    blob = bytearray(b"x") * (300 << 20)   # 300 MiB, touched
    del blob                               # gone before the end: only the high-water mark saw it

@pytest.mark.denet_budget(peak_rss_mb=150)
def test_rss_inside():                     # runs after test_rss_over: that peak is not this test's
    blob = bytearray(b"x") * (10 << 20)

@pytest.mark.denet_budget(cpu_secs=0.5)
def test_cpu_over_in_child():
    subprocess.run([sys.executable, "-c", BUSY.format(secs=1.5)], check=True)

@pytest.mark.denet_budget(cpu_secs=5)
def test_cpu_inside():
    subprocess.run([sys.executable, "-c", BUSY.format(secs=0.2)], check=True)

@pytest.mark.denet_budget(wall_secs=0.3)
def test_wall_over():
    time.sleep(1.0)

@pytest.mark.denet_budget(wall_secs=30)
def test_wall_inside():
    time.sleep(0.1)

@pytest.mark.denet_budget(syscalls=50_000)
def test_syscalls_over():
    subprocess.run([sys.executable, "-c", GETPPID.format(n=200_000)], check=True)

@pytest.mark.denet_budget(syscalls=5_000_000)
def test_syscalls_inside():
    subprocess.run([sys.executable, "-c", GETPPID.format(n=1000)], check=True)

@pytest.mark.denet_budget(cpu_secs=0.2, wall_secs=0.2, peak_rss_mb=100)
def test_three_over():
    subprocess.run([sys.executable, "-c", BUSY.format(secs=0.6)], check=True)
    blob = bytearray(b"x") * (200 << 20)

@pytest.mark.denet_budget(offcpu_secs=100)
def test_offcpu():
    time.sleep(0.1)

@pytest.mark.denet_budget(offcpu_secs=0.2)
def test_offcpu_over():
    time.sleep(0.5)

@pytest.mark.denet_budget(cpu_secs=30)
def test_fails_on_its_own():
    assert 1 == 2

def test_fixture(denet_monitor):
    subprocess.run([sys.executable, "-c", BUSY.format(secs=0.3)], check=True)
    denet_monitor.stop()
    s = denet_monitor.summary
    assert s["processes_seen"] >= 2, s
    assert 0.3 <= s["total_cpu_time_secs"] <= 5, s  # the child's 0.3 s loop, not this process's life
    assert denet_monitor.measurements["cpu_secs"] == s["total_cpu_time_secs"]
'''


def _pytest(dirpath, args, prefix=(), env=None, timeout=240):
    """Run pytest in a subprocess; returns (completed process, {test name: (outcome, text)})."""
    xml = os.path.join(dirpath, "junit.xml")
    cmd = list(prefix) + [PY, "-m", "pytest", "-p", "no:cacheprovider", "-q", f"--junitxml={xml}"] + args
    env = dict(os.environ if env is None else env)
    env.pop("PYTEST_ADDOPTS", None)
    proc = subprocess.run(cmd, cwd=dirpath, capture_output=True, text=True, timeout=timeout, env=env)
    outcomes = {}
    if os.path.exists(xml):
        for case in ET.parse(xml).getroot().iter("testcase"):
            outcome, text = "passed", ""
            for child in case:
                if child.tag in ("failure", "error", "skipped"):
                    outcome = {"failure": "failed", "error": "error", "skipped": "skipped"}[child.tag]
                    text = (child.get("message") or "") + "\n" + (child.text or "")
            outcomes[case.get("name")] = (outcome, text)
    return proc, outcomes


def _records(path):
    with open(path) as f:
        return {r["nodeid"].split("::")[-1]: r for r in map(json.loads, f)}


def _ebpf_expected():
    """Whether the eBPF budgets can be checked here (the conftest's policy: where eBPF is
    required, or we are root, its absence is a failure)."""
    ok, reason = denet.ebpf_available()
    if not ok and (os.environ.get("DENET_REQUIRE_EBPF") or os.geteuid() == 0):
        pytest.fail(f"eBPF is required here but unavailable: {reason}")
    return ok


@pytest.fixture(scope="module")
def budget_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("budgets")
    (d / "test_budgets.py").write_text(BUDGET_TESTS)
    proc, outcomes = _pytest(str(d), ["test_budgets.py", "--denet-report", "report.jsonl"])
    return proc, outcomes, _records(d / "report.jsonl")


def test_plugin_is_registered_by_its_entry_point(tmp_path):
    # no -p: pytest finds the plugin through the pytest11 entry point of the installed package
    out = subprocess.run([PY, "-m", "pytest", "--help"], capture_output=True, text=True, cwd=tmp_path)
    assert "--denet-budget-default" in out.stdout and "--denet-require-ebpf" in out.stdout
    out = subprocess.run([PY, "-m", "pytest", "--markers"], capture_output=True, text=True, cwd=tmp_path)
    assert "@pytest.mark.denet_budget(cpu_secs=None" in out.stdout
    # naming the module with -p as well does not register it twice
    (tmp_path / "test_one.py").write_text("def test_x(denet_monitor):\n    pass\n")
    proc, outcomes = _pytest(str(tmp_path), ["-p", "denet.pytest_plugin", "test_one.py"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert outcomes == {"test_x": ("passed", "")}


def test_budgets_inside_pass_and_over_fail_with_measured_versus_allowed(budget_run):
    proc, outcomes, records = budget_run
    log = proc.stdout + proc.stderr
    ebpf = _ebpf_expected()
    expected = {
        "test_rss_over": "failed", "test_rss_inside": "passed",
        "test_cpu_over_in_child": "failed", "test_cpu_inside": "passed",
        "test_wall_over": "failed", "test_wall_inside": "passed",
        "test_syscalls_over": "failed" if ebpf else "skipped",
        "test_syscalls_inside": "passed" if ebpf else "skipped",
        "test_offcpu_over": "failed" if ebpf else "skipped",
        "test_three_over": "failed", "test_fails_on_its_own": "failed", "test_fixture": "passed",
    }
    if UNDER_ASAN:  # freed memory stays resident in ASan's quarantine: RSS budgets mean nothing
        for name in ("test_rss_inside", "test_three_over", "test_fixture"):
            expected.pop(name)
    for name, outcome in expected.items():
        assert outcomes[name][0] == outcome, f"{name}: {outcomes.get(name)}\n{log}"

    def over(name, key):
        text = outcomes[name][1]
        m = re.search(rf"^  {key}\s+([\d,.]+) (s|MiB)?\s*measured, ([\d,.]+) ?(s|MiB)? allowed$", text, re.M)
        assert m, f"{name}: no line for {key} in:\n{text}"
        assert text.startswith("denet budget exceeded"), text
        return float(m.group(1).replace(",", "")), float(m.group(3).replace(",", ""))

    # RSS: the 300 MiB bytearray, freed before the test ended, is caught by the high-water mark
    measured, allowed = over("test_rss_over", "peak_rss_mb")
    assert 290 <= measured <= (2000 if UNDER_ASAN else 700) and allowed == 150
    if not UNDER_ASAN:
        assert records["test_rss_inside"]["peak_rss_mb"] < 150  # reset: not the earlier test's peak
    # CPU of a child that has exited and been waited for
    measured, allowed = over("test_cpu_over_in_child", "cpu_secs")
    assert 1.45 <= measured <= 6 and allowed == 0.5
    # ... and the message names the process that did it: the busy child, with its CPU
    named = re.findall(r"^      pid (\d+): ([\d.]+) s  (.*)$", outcomes["test_cpu_over_in_child"][1], re.M)
    assert named, outcomes["test_cpu_over_in_child"][1]
    pid, secs, command = named[0]
    assert "-c import time" in command and 1.4 <= float(secs) <= 6, named
    assert 0.15 <= records["test_cpu_inside"]["cpu_secs"] <= 5
    measured, allowed = over("test_wall_over", "wall_secs")
    assert measured >= 0.99 and allowed == 0.3
    # 200,000 getppid calls in a child, counted by eBPF
    if ebpf:
        measured, allowed = over("test_syscalls_over", "syscalls")
        assert 200_000 <= measured <= 400_000 and allowed == 50_000
        assert 1000 <= records["test_syscalls_inside"]["syscalls"] < 200_000
        # a 0.5 s sleep of the test's own thread, timed by the off-CPU profiler
        measured, allowed = over("test_offcpu_over", "offcpu_secs")
        assert 0.45 <= measured <= 5 and allowed == 0.2
    # every exceeded budget is listed
    text = outcomes["test_three_over"][1]
    assert "denet budget exceeded (3 of 3)" in text, text
    for key in ("cpu_secs", "wall_secs", "peak_rss_mb"):
        over("test_three_over", key)
    # a test that fails on its own keeps its own failure, and still gets its figures
    assert "assert 1 == 2" in outcomes["test_fails_on_its_own"][1]
    assert records["test_fails_on_its_own"]["outcome"] == "failed"
    assert records["test_fails_on_its_own"]["budgets_checked"] is False
    # failures, not errors: the figures are in the failure report, not a traceback
    assert "Traceback" not in outcomes["test_cpu_over_in_child"][1]


def test_offcpu_budget_is_checked_or_skipped_with_the_reason(budget_run):
    proc, outcomes, records = budget_run
    outcome, text = outcomes["test_offcpu"]
    if _ebpf_expected():  # measured: the test's 0.1 s sleep
        assert outcome == "passed", (outcome, text)
        assert 0.09 <= records["test_offcpu"]["offcpu_secs"] <= 5, records["test_offcpu"]
    else:
        assert records["test_offcpu"]["offcpu_secs"] is None
        assert outcome == "skipped", (outcome, text)
        assert "eBPF" in text and "offcpu_secs=100 s" in text, text


def test_report_lines_and_terminal_summary(budget_run):
    proc, outcomes, records = budget_run
    assert set(records) == set(outcomes)  # one record per test, every test measured
    r = records["test_cpu_over_in_child"]
    assert set(pytest_plugin.BUDGET_KEYS) <= set(r)
    assert r["outcome"] == "failed" and r["budgets"] == {"cpu_secs": 0.5}
    assert r["exceeded"]["cpu_secs"]["allowed"] == 0.5
    assert records["test_cpu_inside"]["exceeded"] == {}
    assert records["test_syscalls_over"]["ebpf"] is _ebpf_expected()
    assert records["test_cpu_inside"]["ebpf"] is False  # eBPF only where a budget needs it
    head = re.search(r"=+ denet: (\d+) heaviest of (\d+) measured tests, by CPU time =+", proc.stdout)
    assert head and head.group(2) == str(len(records)), proc.stdout
    lines = proc.stdout[head.end():].splitlines()[1:int(head.group(1)) + 1]
    # heaviest first, as the records measured them; budget failures flagged
    cpu = [float(line.split("s cpu")[0]) for line in lines]
    assert cpu == sorted(cpu, reverse=True), lines
    heaviest = max(records.values(), key=lambda r: r["cpu_secs"])
    assert lines[0].endswith(heaviest["nodeid"] + "  OVER BUDGET"), lines
    flagged = next(line for line in lines if "test_cpu_over_in_child" in line)
    assert flagged.endswith("OVER BUDGET") and float(flagged.split("s cpu")[0]) >= 1.45


def test_default_budgets_apply_to_every_test_and_markers_override_them(tmp_path):
    (tmp_path / "test_defaults.py").write_text(textwrap.dedent('''
        import time, pytest

        def burn(secs):
            t = time.process_time()
            while time.process_time() - t < secs:
                pass

        def test_default_applies():
            burn(0.6)

        @pytest.mark.denet_budget(cpu_secs=20)
        def test_marker_raises_it():
            burn(0.6)

        @pytest.mark.denet_budget(cpu_secs=None)
        def test_marker_removes_it():
            burn(0.6)

        def test_light():
            pass
    '''))
    proc, outcomes = _pytest(str(tmp_path), ["test_defaults.py", "--denet-budget-default",
                                             "cpu_secs=0.3,peak_rss_mb=4000"])
    log = proc.stdout + proc.stderr
    outcome, text = outcomes["test_default_applies"]
    assert outcome == "failed", log
    m = re.search(r"^  cpu_secs  ([\d.]+) s measured, 0\.3 s allowed$", text, re.M)
    assert m and float(m.group(1)) >= 0.59, text
    assert "peak_rss_mb" not in text  # held: not listed
    for name in ("test_marker_raises_it", "test_marker_removes_it", "test_light"):
        assert outcomes[name][0] == "passed", (name, log)
    # every test has a budget left (peak_rss_mb), so every test was measured
    assert "denet: 4 heaviest of 4 measured tests" in proc.stdout, proc.stdout


@pytest.mark.parametrize("args, message", [
    (["--denet-budget-default", "cpu=3"], "unknown budget 'cpu'; budgets are cpu_secs, wall_secs"),
    (["--denet-budget-default", "cpu_secs=lots"], "budget cpu_secs must be a number, got 'lots'"),
    (["--denet-budget-default", "cpu_secs"], "expected KEY=VALUE, got 'cpu_secs'"),
    (["--denet-report", "/nonexistent-dir/r.jsonl"], "--denet-report: cannot write /nonexistent-dir/r.jsonl"),
])
def test_bad_options_are_usage_errors(tmp_path, args, message):
    (tmp_path / "test_x.py").write_text("def test_x():\n    pass\n")
    proc, _ = _pytest(str(tmp_path), ["test_x.py"] + args)
    assert proc.returncode == 4, proc.stdout + proc.stderr  # pytest's usage error
    assert message in proc.stderr, proc.stderr


def test_bad_marker_is_an_error_of_that_test(tmp_path):
    (tmp_path / "test_x.py").write_text(textwrap.dedent('''
        import pytest

        @pytest.mark.denet_budget(cpu_seconds=3)
        def test_typo():
            pass

        @pytest.mark.denet_budget(peak_rss_mb=-1)
        def test_negative():
            pass

        def test_fine():
            pass
    '''))
    proc, outcomes = _pytest(str(tmp_path), ["test_x.py"])
    assert outcomes["test_typo"][0] == "error"
    assert "unknown budget 'cpu_seconds'" in outcomes["test_typo"][1]
    assert outcomes["test_negative"][0] == "error"
    assert "budget peak_rss_mb must be a number >= 0" in outcomes["test_negative"][1]
    assert outcomes["test_fine"][0] == "passed"


EBPF_TESTS = '''
import os, pytest

@pytest.mark.denet_budget(syscalls=1_000_000, cpu_secs=30)
def test_syscalls():
    for _ in range(100):
        os.getppid()
'''


def _unprivileged():
    """(prefix to run a command without privilege, environment) or a skip reason."""
    if os.geteuid() != 0:
        if denet.ebpf_available()[0]:
            return None, "this unprivileged user may load eBPF (capabilities)"
        return [], None
    setpriv = shutil.which("setpriv")
    if not setpriv:
        return None, "needs setpriv (util-linux) to drop privileges"
    return [setpriv, "--reuid", "65534", "--regid", "65534", "--clear-groups"], None


def test_ebpf_budgets_skip_without_ebpf_and_fail_under_require_ebpf():
    prefix, why = _unprivileged()
    if prefix is None:
        pytest.skip(why)
    d = tempfile.mkdtemp(prefix="denet-noebpf-")
    try:
        os.chmod(d, 0o777)
        with open(os.path.join(d, "test_ebpf.py"), "w") as f:
            f.write(EBPF_TESTS)
        env = dict(os.environ, HOME=d, PYTHONPATH=ROOT)
        proc, outcomes = _pytest(d, ["test_ebpf.py"], prefix=prefix, env=env)
        outcome, text = outcomes["test_syscalls"]
        assert outcome == "skipped", proc.stdout + proc.stderr
        assert "denet budget not checked: syscalls=1,000,000 (eBPF unavailable:" in text, text
        assert "CAP_BPF" in text  # how to fix it
        assert "The test passed and its other budgets held." in text

        proc, outcomes = _pytest(d, ["test_ebpf.py", "--denet-require-ebpf"], prefix=prefix, env=env)
        outcome, text = outcomes["test_syscalls"]
        assert outcome == "failed", proc.stdout + proc.stderr
        assert "denet budget not checked, and --denet-require-ebpf is set:" in text, text
        assert "syscalls: eBPF unavailable:" in text
    finally:
        shutil.rmtree(d, ignore_errors=True)


# --------------------------------------------------------------------------
# the measurement itself, in this process


def rss_mb():
    with open("/proc/self/status") as f:
        return int(next(x for x in f if x.startswith("VmRSS")).split()[1]) / 1024


@rss_exact
def test_measurement_peak_rss_is_the_intervals_own():
    # against what this process holds before (the suite's earlier tests leave it tens
    # of MiB larger or smaller)
    base = rss_mb()
    big = bytearray(b"x") * (200 << 20)
    del big
    with Measurement() as m:
        small = bytearray(b"y") * (20 << 20)
        del small
    # the 200 MiB spike before the interval is forgotten; the 20 MiB one inside is seen
    peak = m.measurements["peak_rss_mb"]
    assert base + 15 <= peak < base + 150, (base, m.measurements)
    with Measurement() as m2:
        spike = bytearray(b"z") * (120 << 20)
        del spike
    assert m2.measurements["peak_rss_mb"] >= base + 115 > peak, (base, peak, m2.measurements)


def test_measurement_without_a_resettable_peak_gives_no_peak_and_says_why(monkeypatch):
    from denet import _measure

    monkeypatch.setattr(_measure, "reset_peak_rss", lambda: "cannot reset the RSS high-water mark (test)")
    with Measurement() as m:
        pass
    assert m.measurements["peak_rss_mb"] is None
    assert m.why_unavailable("peak_rss_mb") == "cannot reset the RSS high-water mark (test)"
    verdict = pytest_plugin.judge({"peak_rss_mb": 100}, m.measurements, {"peak_rss_mb": m.why_unavailable("peak_rss_mb")})
    assert verdict == {"exceeded": {}, "unchecked": {"peak_rss_mb": "cannot reset the RSS high-water mark (test)"}}


def test_why_the_offcpu_time_is_missing():
    # without eBPF there is none, and the reason says so (the plugin adds how to fix it)
    with Measurement() as m:
        pass
    assert m.measurements["offcpu_secs"] is None
    assert m.why_unavailable("offcpu_secs") == "the monitor ran without eBPF"
    assert "run as root" in pytest_plugin._hint("offcpu_secs", m.why_unavailable("offcpu_secs"))
    # eBPF asked for: its error, or, with eBPF running but no off-CPU total, the summary
    m.ebpf, m.ebpf_error = True, "loading the eBPF off-CPU profiler failed: (test)"
    assert m.why_unavailable("offcpu_secs") == f"eBPF unavailable: {m.ebpf_error}"
    m.ebpf_error = None
    assert m.why_unavailable("offcpu_secs") == OFFCPU_UNAVAILABLE


def test_measurement_counts_disk_writes_of_children():
    target = os.path.join(ROOT, "build", "measure-disk-test.bin")
    os.makedirs(os.path.dirname(target), exist_ok=True)
    try:
        with Measurement() as m:
            subprocess.run(["dd", "if=/dev/zero", f"of={target}", "bs=1M", "count=16", "conv=fsync"],
                           check=True, capture_output=True)
        assert 15.5 <= m.measurements["disk_write_mb"] <= 40, m.measurements
    finally:
        os.unlink(target)


def test_measurement_counts_children_still_running_at_the_end():
    # the child burns 0.5 s of CPU, then sleeps: still running when the measurement ends
    busy = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.5: pass\ntime.sleep(30)"
    with Measurement() as m:
        p = subprocess.Popen([PY, "-c", busy])
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                with open(f"/proc/{p.pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                if (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK") >= 0.5:
                    break
                time.sleep(0.05)
            m.stop()
        finally:
            p.kill()
            p.wait()
    assert 0.45 <= m.measurements["cpu_secs"] <= 5, m.measurements


def test_readme_shows_the_failure_message_the_plugin_writes():
    with open(os.path.join(ROOT, "README.md")) as f:
        readme = f.read()
    block = re.search(r"^(denet budget exceeded \(2 of 3\):\n(?:  .*\n)+)", readme, re.M).group(1)
    measured = {m.group(1): float(m.group(2)) for m in re.finditer(r"^  (\w+)\s+([\d.]+) \S+ measured", block, re.M)}
    budgets = {"cpu_secs": 2.0, "peak_rss_mb": 500.0, "wall_secs": 10.0}
    verdict = pytest_plugin.judge(budgets, dict(measured, wall_secs=6.11), {})
    processes = [
        {"pid": 48211, "command": "python3 tools/preprocess.py --shards 8", "cpu_secs": 4.61,
         "peak_rss_kb": 612.4 * 1024},
        {"pid": 48190, "command": "/usr/bin/python3 -m pytest", "cpu_secs": 0.29, "peak_rss_kb": 88 * 1024},
    ]
    assert pytest_plugin.failure_message(verdict, budgets, False, processes) + "\n" == block


def test_offcpu_budget_under_require_ebpf_fails_when_the_data_is_missing(tmp_path):
    (tmp_path / "test_off.py").write_text(textwrap.dedent('''
        import time, pytest

        @pytest.mark.denet_budget(offcpu_secs=5, wall_secs=60)
        def test_waits():
            time.sleep(0.1)
    '''))
    proc, outcomes = _pytest(str(tmp_path), ["test_off.py", "--denet-require-ebpf", "--denet-report", "r.jsonl"])
    record = _records(tmp_path / "r.jsonl")["test_waits"]
    outcome, text = outcomes["test_waits"]
    if _ebpf_expected():  # measured, so checked: the 0.1 s sleep is inside 5 s
        assert outcome == "passed", text
        assert 0.09 <= record["offcpu_secs"] <= 5, record
        return
    assert record["offcpu_secs"] is None
    assert outcome == "failed", proc.stdout + proc.stderr
    assert "denet budget not checked, and --denet-require-ebpf is set:" in text
    assert "offcpu_secs: eBPF unavailable:" in text, text
