"""pytest plugin: resource budgets for tests, and a fixture that monitors a test.

Registered through the ``pytest11`` entry point, so it is active wherever denet is
installed (``-p denet.pytest_plugin`` loads it explicitly, ``-p no:denet.pytest_plugin``
turns it off).  It costs nothing for tests that use none of it: the C extension is
imported only when a test is measured.

* fixture ``denet_monitor``: measures the test's own process and the children it starts
  from fixture setup to teardown (a :class:`denet._measure.Measurement`; its
  ``.monitor`` is the ``ProcessMonitor``, ``.summary`` the summary dict, ``.measurements``
  the figures budgets use, once stopped);
* marker ``@pytest.mark.denet_budget(cpu_secs=, wall_secs=, peak_rss_mb=,
  rss_growth_mb=, disk_write_mb=, syscalls=, offcpu_secs=)``: the test fails when it
  goes over any of them; the failure lists each exceeded budget, measured against
  allowed;
* ``--denet-budget-default cpu_secs=5,peak_rss_mb=500``: budgets for every test (a
  marker overrides them key by key; ``None`` in a marker removes one);
* ``--denet-report PATH``: one JSON line per measured test; the terminal summary lists
  the heaviest tests;
* ``--denet-require-ebpf``: budgets that need eBPF (``syscalls``, ``offcpu_secs``) fail
  instead of being skipped when the data is not there.

A budget covers the test function: measuring starts once the test's fixtures are set
up and ends when the test function returns.  CPU includes children the test started,
those that already exited too.  Sizes are MiB (2**20 bytes).
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

import pytest

from ._measure import EBPF_MEASURES, MEASURES, Measurement

BUDGET_KEYS = tuple(MEASURES)
MARKER = "denet_budget"

_BUDGETS = pytest.StashKey[dict]()
_MEASUREMENT = pytest.StashKey[Measurement]()
_VERDICT = pytest.StashKey[dict]()
_REPORTS = pytest.StashKey[dict]()
_STATE = pytest.StashKey["_State"]()


# --------------------------------------------------------------------------
# budgets


def _check_value(key: str, value: Any, where: str) -> float | None:
    if key not in MEASURES:
        raise ValueError(f"{where}: unknown budget {key!r}; budgets are {', '.join(BUDGET_KEYS)}")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{where}: budget {key} must be a number >= 0 (or None), got {value!r}")
    return float(value)


def parse_budget_spec(text: str, where: str = "--denet-budget-default") -> dict[str, float]:
    """``"cpu_secs=5,peak_rss_mb=500"`` -> ``{"cpu_secs": 5.0, "peak_rss_mb": 500.0}``."""
    out: dict[str, float] = {}
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        key, eq, value = part.partition("=")
        key = key.strip()
        if not eq:
            raise ValueError(f"{where}: expected KEY=VALUE, got {part!r} (e.g. cpu_secs=5,peak_rss_mb=500)")
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"{where}: budget {key} must be a number, got {value.strip()!r}") from None
        checked = _check_value(key, number, where)
        if checked is not None:
            out[key] = checked
    return out


def budgets_for(item: pytest.Item, defaults: dict[str, float]) -> dict[str, float]:
    """Default budgets overridden by the test's markers (the closest marker wins)."""
    budgets = dict(defaults)
    markers = list(item.iter_markers(MARKER))  # closest first
    for marker in reversed(markers):
        where = f"@pytest.mark.{MARKER} on {item.nodeid}"
        if marker.args:
            raise ValueError(f"{where}: give budgets by name, e.g. {MARKER}(cpu_secs=2), not {marker.args!r}")
        for key, value in marker.kwargs.items():
            checked = _check_value(key, value, where)
            if checked is None:
                budgets.pop(key, None)
            else:
                budgets[key] = checked
    return budgets


def _fmt(key: str, value: float | None) -> str:
    unit = MEASURES[key][0]
    if value is None:
        return "-"
    if key == "syscalls":
        return f"{int(value):,}"
    digits = 2 if unit == "s" else 1
    return f"{value:,.{digits}f} {unit}"


def _fmt_allowed(key: str, value: float) -> str:
    unit = MEASURES[key][0]
    if key == "syscalls":
        return f"{int(value):,}"
    return f"{value:g} {unit}"


def judge(budgets: dict[str, float], measured: dict[str, Any], why: dict[str, str]) -> dict:
    """``{"exceeded": {key: (measured, allowed)}, "unchecked": {key: reason}}``."""
    exceeded: dict[str, tuple[float, float]] = {}
    unchecked: dict[str, str] = {}
    for key, allowed in budgets.items():
        value = measured.get(key)
        if value is None:
            unchecked[key] = why.get(key) or "not measured"
        elif value > allowed:
            exceeded[key] = (value, allowed)
    return {"exceeded": exceeded, "unchecked": unchecked}


_PER_PROCESS = {"cpu_secs": "cpu_secs", "peak_rss_mb": "peak_rss_kb", "rss_growth_mb": "peak_rss_kb",
                "disk_write_mb": "disk_write_bytes"}


def _heaviest(processes: Any, key: str, n: int = 3) -> list[str]:
    """Lines naming the processes that weigh most on the exceeded budget ``key``."""
    field = _PER_PROCESS.get(key)
    if not field or not isinstance(processes, list):
        return []
    rows = [p for p in processes if isinstance(p, dict) and isinstance(p.get(field), (int, float))]
    rows.sort(key=lambda p: -p[field])
    out = []
    for p in rows[:n]:
        value = p[field]
        shown = (f"{value:.2f} s" if field == "cpu_secs" else
                 f"{value / 1024:.1f} MiB" if field == "peak_rss_kb" else f"{value / 2**20:.1f} MiB")
        command = str(p.get("command") or "?")
        command = command if len(command) <= 60 else command[:57] + "..."
        out.append(f"      pid {p.get('pid')}: {shown}  {command}")
    return out


def failure_message(verdict: dict, budgets: dict[str, float], require_ebpf: bool,
                    processes: Any = None) -> str:
    exceeded, unchecked = verdict["exceeded"], verdict["unchecked"]
    lines = []
    if exceeded:
        lines.append(f"denet budget exceeded ({len(exceeded)} of {len(budgets)}):")
        width = max(len(k) for k in exceeded)
        for key, (value, allowed) in exceeded.items():
            lines.append(f"  {key.ljust(width)}  {_fmt(key, value)} measured, {_fmt_allowed(key, allowed)} allowed")
            lines += _heaviest(processes, key)
    must = {k: v for k, v in unchecked.items() if require_ebpf and k in EBPF_MEASURES}
    if must:
        lines.append("denet budget not checked, and --denet-require-ebpf is set:")
        lines += [f"  {k}: {reason}" for k, reason in must.items()]
    rest = {k: v for k, v in unchecked.items() if k not in must}
    if rest and lines:
        lines.append("not checked: " + "; ".join(f"{k} ({reason})" for k, reason in rest.items()))
    return "\n".join(lines)


def _hint(key: str, reason: str) -> str:
    if key in EBPF_MEASURES and "eBPF" in reason and "CAP_BPF" not in reason:  # say how to fix it
        return f"{reason}; run as root (or with CAP_BPF and CAP_PERFMON) to check it"
    return reason


# --------------------------------------------------------------------------
# plugin state


class _State:
    def __init__(self, config: pytest.Config):
        try:
            self.defaults = parse_budget_spec(config.getoption("denet_budget_default") or "")
        except ValueError as e:
            raise pytest.UsageError(str(e)) from None
        self.require_ebpf = bool(config.getoption("denet_require_ebpf"))
        self.top = config.getoption("denet_top")
        self.report_path = config.getoption("denet_report")
        self.report_file = None
        if self.report_path:
            try:
                self.report_file = open(self.report_path, "w", encoding="utf-8")  # noqa: SIM115
            except OSError as e:
                raise pytest.UsageError(
                    f"--denet-report: cannot write {self.report_path}: {e.strerror or e}") from None
        self.records: list[dict] = []

    def measured(self, budgets: dict) -> bool:
        return bool(budgets) or self.report_file is not None

    def close(self) -> None:
        if self.report_file is not None:
            self.report_file.close()
            self.report_file = None


def _needs_ebpf(budgets: dict) -> bool:
    return any(k in budgets for k in EBPF_MEASURES)


# --------------------------------------------------------------------------
# hooks


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("denet", "denet resource budgets")
    group.addoption("--denet-budget-default", metavar="KEY=VALUE,...", default=None,
                    help="budgets for every test, e.g. cpu_secs=5,peak_rss_mb=500 (keys: "
                         + ", ".join(BUDGET_KEYS) + "); @pytest.mark.denet_budget overrides them")
    group.addoption("--denet-report", metavar="PATH", default=None,
                    help="measure every test and write one JSON line per test to PATH")
    group.addoption("--denet-require-ebpf", action="store_true", default=False,
                    help="fail, rather than skip, a test whose syscalls/offcpu_secs budget cannot be "
                         "checked because the eBPF data is not there")
    group.addoption("--denet-top", metavar="N", type=int, default=10,
                    help="how many of the heaviest measured tests the terminal summary lists (default 10)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(cpu_secs=None, wall_secs=None, peak_rss_mb=None, rss_growth_mb=None, "
        "disk_write_mb=None, syscalls=None, offcpu_secs=None): fail the test when it uses more "
        "(denet; sizes in MiB, CPU includes child processes)")
    config.stash[_STATE] = _State(config)


def pytest_unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(_STATE, None)
    if state is not None:
        state.close()


@pytest.hookimpl(trylast=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """After the test's fixtures are set up: decide its budgets, start measuring."""
    state = item.config.stash[_STATE]
    try:
        budgets = budgets_for(item, state.defaults)
    except ValueError as e:
        pytest.fail(str(e), pytrace=False)
    item.stash[_BUDGETS] = budgets
    if state.measured(budgets):
        ebpf = _needs_ebpf(budgets)
        item.stash[_MEASUREMENT] = Measurement(ebpf=ebpf).start()


@pytest.hookimpl(trylast=True)
def pytest_runtest_call(item: pytest.Item) -> None:
    """The test function returned without failing: stop measuring and judge its budgets."""
    m = item.stash.get(_MEASUREMENT, None)
    if m is None or not m.running:
        return
    measured = m.stop()
    budgets = item.stash.get(_BUDGETS, {})
    why = {k: _hint(k, m.why_unavailable(k) or "not measured") for k in budgets if measured.get(k) is None}
    verdict = judge(budgets, measured, why)
    item.stash[_VERDICT] = verdict
    state = item.config.stash[_STATE]
    must_check = state.require_ebpf and any(k in EBPF_MEASURES for k in verdict["unchecked"])
    if verdict["exceeded"] or must_check:
        try:  # which processes did it (the monitor's per-process table), where known
            processes = m.summary.get("processes")
        except Exception:
            processes = None
        pytest.fail(failure_message(verdict, budgets, state.require_ebpf, processes), pytrace=False)
    if verdict["unchecked"]:
        reasons = "; ".join(f"{k}={_fmt_allowed(k, budgets[k])} ({r})" for k, r in verdict["unchecked"].items())
        pytest.skip(f"denet budget not checked: {reasons}. The test passed and its other budgets held.")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item: pytest.Item) -> None:
    """A test that failed on its own still gets its figures (for --denet-report)."""
    m = item.stash.get(_MEASUREMENT, None)
    if m is not None and m.running:
        m.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem):  # noqa: ARG001
    """After setup, call and teardown: the test's record for --denet-report."""
    yield
    _record(item)


def _outcome(item: pytest.Item) -> str:
    reports = item.stash.get(_REPORTS, {})
    setup, call, teardown = reports.get("setup"), reports.get("call"), reports.get("teardown")
    if setup is not None and setup.failed:
        return "error"
    if setup is not None and setup.skipped:
        return "skipped"
    if call is not None and call.failed:
        return "failed"
    if teardown is not None and teardown.failed:
        return "error"
    if call is not None and call.skipped:
        return "skipped"
    return "passed"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call):  # noqa: ARG001
    outcome = yield
    report = outcome.get_result()
    item.stash.setdefault(_REPORTS, {})[report.when] = report


def _record(item: pytest.Item) -> None:
    m = item.stash.get(_MEASUREMENT, None)
    if m is None or m.measurements is None:
        return
    state = item.config.stash[_STATE]
    budgets = item.stash.get(_BUDGETS, {})
    verdict = item.stash.get(_VERDICT, None)
    record: dict[str, Any] = {"nodeid": item.nodeid, "outcome": _outcome(item)}
    record.update(m.measurements)
    record["budgets"] = budgets
    if verdict is not None:
        record["exceeded"] = {k: {"measured": v, "allowed": a} for k, (v, a) in verdict["exceeded"].items()}
        record["unchecked"] = verdict["unchecked"]
    else:
        record["budgets_checked"] = False  # the test failed or errored before its budgets were judged
    record["ebpf"] = m.ebpf and not m.ebpf_error
    if m.ebpf_error:
        record["ebpf_error"] = m.ebpf_error
    state.records.append(record)
    if state.report_file is not None:
        state.report_file.write(json.dumps(record, separators=(",", ":")) + "\n")
        state.report_file.flush()


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:  # noqa: ARG001
    state = config.stash.get(_STATE, None)
    if state is None or not state.records or state.top <= 0:
        return
    records = sorted(state.records, key=lambda r: -(r.get("cpu_secs") or 0.0))[: state.top]
    tr = terminalreporter
    tr.write_sep("=", f"denet: {len(records)} heaviest of {len(state.records)} measured tests, by CPU time")
    for r in records:
        parts = [f"{r.get('cpu_secs') or 0:7.2f}s cpu", f"{r.get('wall_secs') or 0:7.2f}s wall"]
        if r.get("peak_rss_mb") is not None:
            parts.append(f"{r['peak_rss_mb']:8.1f} MiB peak")
        if r.get("disk_write_mb") is not None:
            parts.append(f"{r['disk_write_mb']:7.1f} MiB written")
        if r.get("syscalls") is not None:
            parts.append(f"{r['syscalls']:>10,} syscalls")
        flag = "  OVER BUDGET" if r.get("exceeded") else ""
        tr.write_line("  ".join(parts) + f"  {r['nodeid']}{flag}")
    if state.report_path:
        tr.write_line(f"denet: per-test measurements written to {os.path.abspath(state.report_path)}")


# --------------------------------------------------------------------------
# fixture


@pytest.fixture
def denet_monitor(request: pytest.FixtureRequest):
    """Monitor this test's process and the children it starts, from setup to teardown.

    Yields a :class:`denet._measure.Measurement`: ``.monitor`` (the ``ProcessMonitor``),
    ``.summary`` (live while the test runs; final after teardown or ``.stop()``, with
    ``total_cpu_time_secs`` covering the test only), ``.measurements`` (after stop),
    ``.samples()`` and ``_repr_html_()``.  eBPF is on when the test has a budget that
    needs it or ``--denet-require-ebpf`` is given; ``.ebpf_error`` says why it is off.
    """
    state = request.config.stash[_STATE]
    budgets = request.node.stash.get(_BUDGETS, None)
    if budgets is None:
        try:
            budgets = budgets_for(request.node, state.defaults)
        except ValueError:
            budgets = {}
    m = Measurement(ebpf=_needs_ebpf(budgets) or state.require_ebpf).start()
    try:
        yield m
    finally:
        if m.running:
            m.stop()
