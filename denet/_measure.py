"""Measuring a stretch of work done by *this* process and the children it starts: one
test (the pytest plugin) or one notebook cell (the ``%%denet`` magic).

A monitor attached to our own pid (``ProcessMonitor.from_pid(os.getpid())``) samples
the tree while the work runs; its samples feed the report.  The totals a budget is
checked against come from the kernel's own accounting over the interval, because the
attached monitor's cumulative figures start long before the interval does:

* CPU: ``getrusage(RUSAGE_SELF)`` + ``getrusage(RUSAGE_CHILDREN)`` deltas (the second
  holds every child the process waited for, with the children *they* waited for), plus
  what descendants still alive at the end spent during the interval (``/proc/PID/stat``).
  With eBPF the monitor also follows orphaned grandchildren; its own CPU delta is used
  when it is larger.
* Peak RSS: the process's high-water mark is reset at the start (``5`` written to
  ``/proc/self/clear_refs``) and ``VmHWM`` read at the end, so a spike between two
  samples is caught and an earlier test's peak is not; children's peaks come from the
  monitor (their ``VmHWM`` while they live, the eBPF exit record otherwise).
* Disk writes: ``write_bytes`` of ``/proc/self/io`` (which includes the children the
  process waited for) plus the live descendants' deltas.
* Syscalls and off-CPU time: the eBPF monitor's summary (``total_syscalls``,
  ``total_offcpu_time_secs``); ``None`` when that data is not available, with the reason.

Sizes are MiB (2**20 bytes); the keys say ``mb`` because budgets are written that way.
"""

from __future__ import annotations

import os
import resource
import time
from typing import Any

MIB = 1024 * 1024

#: What :meth:`Measurement.stop` measures: key -> (unit shown to users, description).
MEASURES = {
    "cpu_secs": ("s", "CPU time of the process and its children"),
    "wall_secs": ("s", "wall time"),
    "peak_rss_mb": ("MiB", "peak RSS of any one process"),
    "rss_growth_mb": ("MiB", "RSS growth of the process itself"),
    "disk_write_mb": ("MiB", "bytes written to disk (block layer)"),
    "syscalls": ("", "system calls (eBPF)"),
    "offcpu_secs": ("s", "off-CPU time (eBPF)"),
}
EBPF_MEASURES = ("syscalls", "offcpu_secs")
OFFCPU_UNAVAILABLE = "off-CPU time not recorded: the summary has no total_offcpu_time_secs"


# --------------------------------------------------------------------------
# /proc readers (Linux); each returns None when the file cannot be read


def _status_kb(pid: int | str, key: str) -> int | None:
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(key.encode() + b":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def _write_bytes(pid: int | str) -> int | None:
    try:
        with open(f"/proc/{pid}/io", "rb") as f:
            for line in f:
                if line.startswith(b"write_bytes:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


class _Proc:
    """What the interval needs of one descendant: identity, CPU, writes, high-water mark."""

    __slots__ = ("pid", "start", "cpu_secs", "write_bytes", "hwm_kb")

    def __init__(self, pid: int, start: int, cpu_secs: float, write_bytes: int | None, hwm_kb: int | None):
        self.pid, self.start, self.cpu_secs = pid, start, cpu_secs
        self.write_bytes, self.hwm_kb = write_bytes, hwm_kb


def _read_proc(pid: int) -> _Proc | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            text = f.read()
        rest = text[text.rindex(b")") + 2:].split()
        # fields 14-17 (utime, stime, cutime, cstime) and 22 (starttime); rest[0] is field 3
        ticks = int(rest[11]) + int(rest[12]) + int(rest[13]) + int(rest[14])
        start = int(rest[19])
    except (OSError, ValueError, IndexError):
        return None
    return _Proc(pid, start, ticks / _TICK, _write_bytes(pid), _status_kb(pid, "VmHWM"))


def _children_of(pid: int) -> list[int] | None:
    """Children of pid from /proc/PID/task/*/children (None if the kernel lacks it)."""
    out: list[int] = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    found = False
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as f:
                out.extend(int(x) for x in f.read().split())
            found = True
        except FileNotFoundError:
            continue
        except (OSError, ValueError):
            continue
    return out if found else None


def _children_by_scan() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                text = f.read()
            ppid = int(text[text.rindex(b")") + 2:].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        kids.setdefault(ppid, []).append(int(name))
    return kids


def descendants(root: int) -> dict[tuple[int, int], _Proc]:
    """Live descendants of root keyed by (pid, start time): a reused pid is a new key."""
    out: dict[tuple[int, int], _Proc] = {}
    scan: dict[int, list[int]] | None = None
    todo = [root]
    while todo:
        pid = todo.pop()
        kids = _children_of(pid) if scan is None else scan.get(pid, [])
        if kids is None:  # no /proc/PID/task/TID/children: one scan of /proc instead
            scan = _children_by_scan()
            kids = scan.get(pid, [])
        for kid in kids:
            proc = _read_proc(kid)
            if proc is not None and (kid, proc.start) not in out:
                out[(kid, proc.start)] = proc
                todo.append(kid)
    return out


def reset_peak_rss() -> str | None:
    """Reset this process's RSS high-water mark; the reason when that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return None
    except OSError as e:
        return f"cannot reset the RSS high-water mark (/proc/self/clear_refs: {e.strerror or e})"


def _cpu(ru: resource.struct_rusage) -> float:
    return ru.ru_utime + ru.ru_stime


def _monitor_class():
    import denet  # noqa: PLC0415 (lazy: the extension loads only when something is measured)

    return denet.ProcessMonitor


# --------------------------------------------------------------------------


class Measurement:
    """Measure this process and its children from :meth:`start` to :meth:`stop`.

    ``ebpf=True`` asks the monitor for eBPF collectors (syscall counts); when they are
    unavailable monitoring goes on and :attr:`ebpf_error` says why.
    """

    def __init__(self, *, ebpf: bool = False, base_interval_ms: int = 50, max_interval_ms: int = 1000,
                 store_in_memory: bool = True):
        self.ebpf = ebpf
        self.base_interval_ms = base_interval_ms
        self.max_interval_ms = max_interval_ms
        self.store_in_memory = store_in_memory
        self.monitor = None
        self.ebpf_error: str | None = None
        self.hwm_error: str | None = None
        self.measurements: dict[str, Any] | None = None
        self.t0_wall: float | None = None
        self._final_summary: dict | None = None
        self._running = False

    # -- life cycle

    def start(self) -> "Measurement":
        pid = os.getpid()
        cls = _monitor_class()
        self.monitor = cls.from_pid(pid, base_interval_ms=self.base_interval_ms,
                                    max_interval_ms=self.max_interval_ms, include_children=True,
                                    enable_ebpf=self.ebpf, store_in_memory=self.store_in_memory,
                                    quiet=True)
        if self.ebpf:
            self.ebpf_error = getattr(self.monitor, "ebpf_error", None)
        # after the monitor exists (loading BPF programs allocates), before it first reads
        # the high-water mark
        self.hwm_error = reset_peak_rss()  # None, or why the peak cannot be the interval's own
        self.monitor.start()
        deadline = time.monotonic() + 1.0
        while self.monitor.latest_sample() is None and time.monotonic() < deadline:
            time.sleep(0.001)
        self._monitor_cpu0 = self._monitor_cpu()
        self._desc0 = descendants(pid)
        self._io0 = _write_bytes("self")
        self._rss0 = _status_kb("self", "VmRSS")
        self._self0 = _cpu(resource.getrusage(resource.RUSAGE_SELF))
        self._children0 = _cpu(resource.getrusage(resource.RUSAGE_CHILDREN))
        self.t0_wall = time.time()
        self._t0 = time.perf_counter()
        self._running = True
        return self

    def stop(self) -> dict[str, Any]:
        """Stop monitoring; returns (and keeps in :attr:`measurements`) what was measured."""
        if not self._running:
            if self.measurements is None:
                raise RuntimeError("Measurement.stop() before start()")
            return self.measurements
        wall = time.perf_counter() - self._t0
        cpu_self = _cpu(resource.getrusage(resource.RUSAGE_SELF)) - self._self0
        cpu_children = _cpu(resource.getrusage(resource.RUSAGE_CHILDREN)) - self._children0
        io1 = _write_bytes("self")
        rss1 = _status_kb("self", "VmRSS")
        hwm = _status_kb("self", "VmHWM")
        desc1 = descendants(os.getpid())
        self.monitor.stop()
        self._running = False
        summary = self._summary_raw()

        # CPU and writes of descendants alive now: what they did during the interval
        # (all of it if they started during it).  Those alive at the start and gone now
        # were (usually) waited for inside the tree, which added their whole lives to
        # the rusage/cutime deltas: their share from before the interval comes off.
        cpu_desc = 0.0
        write_desc = 0
        for key, p in desc1.items():
            before = self._desc0.get(key)
            cpu_desc += p.cpu_secs - (before.cpu_secs if before else 0.0)
            if p.write_bytes is not None:
                write_desc += p.write_bytes - ((before.write_bytes or 0) if before else 0)
        for key, p in self._desc0.items():
            if key not in desc1:
                cpu_desc -= p.cpu_secs
                write_desc -= p.write_bytes or 0
        cpu = max(0.0, cpu_self + cpu_children + cpu_desc)
        monitor_cpu = self._monitor_cpu(summary)
        if monitor_cpu is not None and self._monitor_cpu0 is not None:
            cpu = max(cpu, monitor_cpu - self._monitor_cpu0)

        peak_mb = None
        if self.hwm_error is None:  # else our high-water mark is the process's lifetime's: no figure
            peaks_kb = [hwm or 0, summary.get("peak_process_rss_kb") or 0, self._sampled_child_peak_kb()]
            peaks_kb += [p.hwm_kb or 0 for key, p in desc1.items() if key not in self._desc0]
            peak_mb = max(peaks_kb) / 1024
        disk = None
        if io1 is not None and self._io0 is not None:
            disk = max(0, io1 - self._io0 + write_desc) / MIB

        self.measurements = {
            "wall_secs": wall,
            "cpu_secs": cpu,
            "peak_rss_mb": peak_mb,
            "rss_growth_mb": (rss1 - self._rss0) / 1024 if rss1 is not None and self._rss0 is not None else None,
            "disk_write_mb": disk,
            "syscalls": self._syscalls(summary),
            "offcpu_secs": summary.get("total_offcpu_time_secs"),
        }
        self._final_summary = self._with_interval_cpu(summary, cpu)
        return self.measurements

    def __enter__(self) -> "Measurement":
        return self.start()

    def __exit__(self, *exc) -> None:
        if self._running:
            self.stop()

    # -- results

    @property
    def running(self) -> bool:
        return self._running

    @property
    def summary(self) -> dict:
        """The monitor's summary, with ``total_cpu_time_secs`` covering the interval only
        (an attached monitor's own figure starts when the process did).  Live while
        running, final after :meth:`stop`."""
        if self._final_summary is not None and not self._running:
            return dict(self._final_summary)
        if self.monitor is None:
            raise RuntimeError("nothing measured yet: start() first")
        summary = self._summary_raw()
        cpu = self._monitor_cpu(summary)
        if cpu is not None and self._monitor_cpu0 is not None:
            summary = self._with_interval_cpu(summary, max(0.0, cpu - self._monitor_cpu0))
        return summary

    def samples(self) -> list[dict]:
        return self.monitor.get_samples() if self.monitor is not None else []

    def why_unavailable(self, key: str) -> str | None:
        """Why measurement ``key`` is None (after stop), else None."""
        if self.measurements is None or self.measurements.get(key) is not None:
            return None
        if key == "syscalls":
            if not self.ebpf:
                return "the monitor ran without eBPF"
            return f"eBPF unavailable: {self.ebpf_error or 'the summary has no total_syscalls'}"
        if key == "offcpu_secs":
            if not self.ebpf:
                return "the monitor ran without eBPF"
            if self.ebpf_error:
                return f"eBPF unavailable: {self.ebpf_error}"
            return OFFCPU_UNAVAILABLE
        if key == "peak_rss_mb":
            return self.hwm_error
        if key == "rss_growth_mb":
            return "cannot read VmRSS from /proc/self/status"
        if key == "disk_write_mb":
            return "cannot read /proc/self/io"
        return None

    def html(self, title: str | None = None) -> str:
        """HTML fragment of the report (see :mod:`denet.report`)."""
        from . import report  # noqa: PLC0415

        return report.render_fragment(self.samples(), self.summary, self.monitor.get_metadata(),
                                      title=title, t0_ms=self.t0_wall * 1000 if self.t0_wall else None)

    def _repr_html_(self) -> str:
        return self.html()

    # -- helpers

    def _summary_raw(self) -> dict:
        summary = self.monitor.get_summary()
        return summary if isinstance(summary, dict) else {}

    def _monitor_cpu(self, summary: dict | None = None) -> float | None:
        summary = self._summary_raw() if summary is None else summary
        value = summary.get("total_cpu_time_secs")
        return float(value) if isinstance(value, (int, float)) else None

    def _syscalls(self, summary: dict) -> int | None:
        if not self.ebpf or self.ebpf_error:
            return None
        value = summary.get("total_syscalls")
        return int(value) if isinstance(value, (int, float)) else None

    def _sampled_child_peak_kb(self) -> int:
        peak = 0
        for sample in self.samples():
            for child in sample.get("children") or ():
                metrics = child.get("metrics") if isinstance(child, dict) else None
                if isinstance(metrics, dict):
                    peak = max(peak, metrics.get("mem_rss_kb") or 0)
        return peak

    @staticmethod
    def _with_interval_cpu(summary: dict, cpu: float) -> dict:
        out = dict(summary)
        out["total_cpu_time_secs"] = cpu
        return out
