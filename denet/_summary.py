"""Summaries computed from recorded samples (pure Python).

:func:`generate_summary_from_file` and :func:`generate_summary_from_metrics_json`
return the same keys as ``ProcessMonitor.get_summary()``:

``total_time_secs``, ``sample_count``, ``max_processes``, ``max_threads``,
``total_disk_read_bytes``, ``total_disk_write_bytes``,
``total_syscall_read_bytes``, ``total_syscall_write_bytes``,
``total_sys_net_rx_bytes``, ``total_sys_net_tx_bytes``, ``peak_mem_rss_kb``,
``avg_cpu_usage``, ``total_cpu_time_secs``, ``peak_process_rss_kb``,
``processes_seen``, when the samples carry eBPF syscall counts ``total_syscalls``
and ``syscalls_by_category``; when they carry off-CPU times,
``total_offcpu_time_secs`` and ``offcpu_analysis`` (from the last sample, since
off-CPU figures are cumulative; the summary record wins when the file has one); when
they carry GPU readings, ``gpu``; then ``peak_page_faults_cached``,
``peak_page_faults_disk``, ``total_sock_rx_bytes``, ``total_sock_tx_bytes``,
``total_sock_rx_bytes_remote``, ``total_sock_tx_bytes_remote`` (None when the
samples have no socket counts), ``syscalls`` (with eBPF: the syscall rate and the
share of each category) and ``memory_characterization`` (``mean_ipc``,
``llc_miss_rate``, ``backend_stall_ratio``, ``psi_some_fraction``, ``verdict``).

How each is computed from samples:

* ``total_time_secs``: last ``ts_ms`` minus first, in seconds (or the
  ``elapsed_time`` argument).
* ``max_processes``: largest ``aggregated.process_count`` (1 for flat samples).
* ``max_threads``, ``peak_mem_rss_kb``: largest aggregated (or flat) value.
* ``avg_cpu_usage``: mean of the aggregated (or flat) ``cpu_usage``.
* disk and syscall byte totals: the I/O counters are cumulative per process, so
  the total is the sum over every process ever seen (the parent and each child
  pid) of its *last* seen value; work of children that exited is kept.  When
  a sample has only ``aggregated`` data the largest aggregated value is a lower
  bound that is used if it is larger.
* network totals: the largest value seen (they are namespace-wide counters).
* socket byte totals: like the disk totals, the last value of every process (exact
  with the summary record, which also keeps processes that lived between samples).
* ``peak_page_faults_*``: the largest aggregated (or flat) value.
* ``memory_characterization``: the samples' ``perf`` deltas summed and their
  ``psi_mem.some_avg10`` averaged (a fraction: /100), with denet's rules: backend
  stalls > 0.5 of cycles and IPC < 1.0 is memory-bound, stalls < 0.2 and IPC > 1.5
  cpu-bound, else memory-bound when the PSI fraction is over 0.5, else mixed; without
  counters ``insufficient-data``.
* ``processes_seen``: distinct processes (parent + child pids) in the samples;
  the summary record's exact count when there is one.
* ``gpu``: the summary record's when there is one; otherwise computed from the
  samples' ``gpu`` parts as the monitor does (see :func:`gpu_summary_of`).
* ``total_cpu_time_secs`` and ``peak_process_rss_kb``: when the input holds a
  ``"summary"`` record (written by the monitor when it stops) its exact values
  are used, with its syscall totals.  Otherwise they are estimated --
  ``cpu_usage`` is the mean over the interval since the previous sample, so
  CPU seconds are ``sum(cpu_usage_i / 100 * (t_i - t_{i-1}))``, and the peak
  process RSS is the largest per-process ``mem_rss_kb`` (processes that lived
  between two samples are missed by both, and by ``processes_seen``) -- and the
  result carries ``"estimated": ["total_cpu_time_secs", "peak_process_rss_kb",
  "processes_seen"]``.

Records that are not valid (see ``denet._formats.record_problem``: numbers must
be finite, fields of the right type) are skipped, never folded in, and the
result carries ``"skipped_records"``: how many, when that is not 0.
"""

from __future__ import annotations

import math
import os
from typing import Any, Iterable

from . import _formats

SUMMARY_KEYS = (
    "total_time_secs",
    "sample_count",
    "max_processes",
    "max_threads",
    "total_disk_read_bytes",
    "total_disk_write_bytes",
    "total_syscall_read_bytes",
    "total_syscall_write_bytes",
    "total_sys_net_rx_bytes",
    "total_sys_net_tx_bytes",
    "peak_mem_rss_kb",
    "avg_cpu_usage",
    "total_cpu_time_secs",
    "peak_process_rss_kb",
    "processes_seen",
)
EBPF_SUMMARY_KEYS = ("total_syscalls", "syscalls_by_category", "total_offcpu_time_secs",
                     "offcpu_analysis")
GPU_SUMMARY_KEY = "gpu"
_GIB = 1024 ** 3
#: Keys after those (denet HEAD's summary keys and the socket totals).
MORE_SUMMARY_KEYS = (
    "peak_page_faults_cached",
    "peak_page_faults_disk",
    "total_sock_rx_bytes",
    "total_sock_tx_bytes",
    "total_sock_rx_bytes_remote",
    "total_sock_tx_bytes_remote",
    "syscalls",
    "memory_characterization",
)
_SOCK = ("sock_rx_bytes", "sock_tx_bytes", "sock_rx_bytes_remote", "sock_tx_bytes_remote")
_PERF = ("cycles", "instructions", "cache_refs", "cache_misses", "stalled_backend")
ESTIMATED_KEYS = ["total_cpu_time_secs", "peak_process_rss_kb", "processes_seen"]

_CUMULATIVE = (
    "disk_read_bytes",
    "disk_write_bytes",
    "syscall_read_bytes",
    "syscall_write_bytes",
)
_NET = ("sys_net_rx_bytes", "sys_net_tx_bytes")
_PARENT = "parent"  # per-process key for the monitored process itself


def _num(value: Any, default: float = 0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return default
    return value


def _int(value: float) -> int:
    return int(round(value))


class _Accumulator:
    """Folds samples one at a time into the summary fields."""

    def __init__(self) -> None:
        self.count = 0
        self.first_ts: float | None = None
        self.last_ts: float | None = None
        self.prev_ts: float | None = None
        self.max_processes = 0
        self.max_threads = 0
        self.peak_mem = 0
        self.cpu_sum = 0.0
        self.cpu_seconds = 0.0
        self.peak_process_rss = 0
        self.have_process_rss = False
        self.last_per_pid: dict[Any, dict[str, float]] = {}
        self.max_aggregated = {k: 0 for k in _CUMULATIVE}
        self.net_max = {k: 0 for k in _NET}
        self.net_aggregated_max = {k: 0 for k in _NET}
        self.have_process_net = False
        self.syscalls: dict | None = None
        self.gpu = _GpuAccumulator()
        self.offcpu: dict | None = None
        self.peak_faults = {"page_faults_cached": 0, "page_faults_disk": 0}
        self.last_sock: dict[Any, dict[str, Any]] = {}
        self.perf: dict[str, Any] = {}  # key -> sum of deltas, None once one is unknown
        self.psi_values: list[float] = []

    def _offcpu(self, ebpf: Any) -> None:
        """Off-CPU figures are cumulative: the last sample's are the run's."""
        if isinstance(ebpf, dict) and isinstance(ebpf.get("offcpu"), dict):
            self.offcpu = ebpf["offcpu"]

    # -- per-process helpers
    def _process(self, key: Any, metrics: dict) -> None:
        last = self.last_per_pid.setdefault(key, {})
        for field in _CUMULATIVE:
            if field in metrics:
                # None: the counter could not be read (another user's process); a total
                # with an unknown part is unknown, never a 0 that reads as "no I/O".
                last[field] = None if metrics[field] is None else _num(metrics[field])
        for field in _NET:
            if field in metrics:
                self.have_process_net = True
                self.net_max[field] = max(self.net_max[field], _num(metrics[field]))
        if "mem_rss_kb" in metrics:
            self.have_process_rss = True
            self.peak_process_rss = max(self.peak_process_rss, _num(metrics["mem_rss_kb"]))
        # socket bytes: cumulative per process, like the I/O counters; absent or None is unknown
        self.last_sock[key] = {f: metrics.get(f) for f in _SOCK}

    def _memchar(self, view: dict) -> None:
        perf = view.get("perf")
        if isinstance(perf, dict):
            for key in _PERF:
                value = perf.get(key)
                if key not in self.perf:
                    self.perf[key] = 0
                if self.perf[key] is None or isinstance(value, bool) or not isinstance(value, (int, float)):
                    self.perf[key] = None
                else:
                    self.perf[key] += value
        psi = view.get("psi_mem")
        if isinstance(psi, dict) and isinstance(psi.get("some_avg10"), (int, float)):
            self.psi_values.append(float(psi["some_avg10"]))

    def add(self, kind: str, sample: dict) -> None:
        if kind == "tree":
            aggregated = sample.get("aggregated")
            parent = sample.get("parent")
            children = sample.get("children") or []
            if not isinstance(aggregated, dict):
                aggregated = None
            if isinstance(parent, dict):
                self._process(_PARENT, parent)
            n_children = 0
            for child in children:
                if not isinstance(child, dict):
                    continue
                n_children += 1
                metrics = child.get("metrics") if isinstance(child.get("metrics"), dict) else child
                pid = child.get("pid")
                key = ("pid", pid) if pid is not None else ("child", n_children)
                self._process(key, metrics)
            view = aggregated if aggregated is not None else (parent if isinstance(parent, dict) else {})
            if aggregated is not None and "process_count" in aggregated:
                processes = _num(aggregated["process_count"])
            else:
                processes = (1 if isinstance(parent, dict) else 0) + n_children
            if aggregated is not None:
                for field in _CUMULATIVE:
                    if field in aggregated:
                        self.max_aggregated[field] = max(self.max_aggregated[field], _num(aggregated[field]))
                for field in _NET:
                    if field in aggregated:
                        self.net_aggregated_max[field] = max(
                            self.net_aggregated_max[field], _num(aggregated[field])
                        )
                ebpf = aggregated.get("ebpf")
                if isinstance(ebpf, dict) and isinstance(ebpf.get("syscalls"), dict):
                    self.syscalls = ebpf["syscalls"]
                self.gpu.add(aggregated.get("gpu"))
                self._offcpu(ebpf)
            ts = sample.get("ts_ms", view.get("ts_ms"))
        else:  # flat sample
            self._offcpu(sample.get("ebpf"))
            self._process(_PARENT, sample)
            self.gpu.add(sample.get("gpu"))
            view = sample
            processes = 1
            ts = sample.get("ts_ms")

        self.count += 1
        for field in self.peak_faults:
            self.peak_faults[field] = max(self.peak_faults[field], _num(view.get(field)))
        self._memchar(view)
        self.max_processes = max(self.max_processes, processes)
        self.max_threads = max(self.max_threads, _num(view.get("thread_count")))
        self.peak_mem = max(self.peak_mem, _num(view.get("mem_rss_kb")))
        cpu = _num(view.get("cpu_usage"))
        self.cpu_sum += cpu

        ts = _num(ts, None)  # type: ignore[arg-type]
        if ts is not None:
            if self.first_ts is None or ts < self.first_ts:
                self.first_ts = ts
            if self.last_ts is None or ts > self.last_ts:
                self.last_ts = ts
            if self.prev_ts is not None and ts > self.prev_ts:
                self.cpu_seconds += cpu / 100.0 * (ts - self.prev_ts) / 1000.0
            self.prev_ts = ts

    def result(self, elapsed_time: float | None, summary_record: dict | None) -> dict:
        if elapsed_time is None:
            if self.first_ts is not None and self.last_ts is not None:
                elapsed_time = (self.last_ts - self.first_ts) / 1000.0
            else:
                elapsed_time = 0.0
        totals = {}
        for field in _CUMULATIVE:
            values = [last.get(field, 0) for last in self.last_per_pid.values()]
            if any(v is None for v in values):
                totals[field] = None
                continue
            totals[field] = _int(max(sum(values), self.max_aggregated[field]))
        net_source = self.net_max if self.have_process_net else self.net_aggregated_max
        out: dict[str, Any] = {
            "total_time_secs": float(elapsed_time),
            "sample_count": self.count,
            "max_processes": _int(self.max_processes),
            "max_threads": _int(self.max_threads),
            "total_disk_read_bytes": totals["disk_read_bytes"],
            "total_disk_write_bytes": totals["disk_write_bytes"],
            "total_syscall_read_bytes": totals["syscall_read_bytes"],
            "total_syscall_write_bytes": totals["syscall_write_bytes"],
            "total_sys_net_rx_bytes": _int(net_source["sys_net_rx_bytes"]),
            "total_sys_net_tx_bytes": _int(net_source["sys_net_tx_bytes"]),
            "peak_mem_rss_kb": _int(self.peak_mem),
            "avg_cpu_usage": (self.cpu_sum / self.count) if self.count else 0.0,
        }
        out["processes_seen"] = len(self.last_per_pid) if self.last_per_pid else _int(self.max_processes)
        gpu = self.gpu.result()
        if gpu is not None:
            out[GPU_SUMMARY_KEY] = gpu
        out["peak_page_faults_cached"] = _int(self.peak_faults["page_faults_cached"])
        out["peak_page_faults_disk"] = _int(self.peak_faults["page_faults_disk"])
        for field in _SOCK:
            values = [last.get(field) for last in self.last_sock.values()]
            known = values and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
            out["total_" + field] = _int(sum(values)) if known else None
        if isinstance(self.syscalls, dict):
            out["syscalls"] = syscall_fractions(self.syscalls, elapsed_time)
        out["memory_characterization"] = memory_characterization(self.perf, self.psi_values)
        if isinstance(self.syscalls, dict):
            out["total_syscalls"] = _int(_num(self.syscalls.get("total")))
            by_cat = self.syscalls.get("by_category")
            out["syscalls_by_category"] = dict(by_cat) if isinstance(by_cat, dict) else {}
        if isinstance(self.offcpu, dict):
            out["total_offcpu_time_secs"] = _num(self.offcpu.get("total_time_ns")) / 1e9
            if isinstance(self.offcpu.get("analysis"), dict):
                out["offcpu_analysis"] = dict(self.offcpu["analysis"])
        if summary_record is not None:
            out["total_cpu_time_secs"] = summary_record.get("total_cpu_time_secs", 0.0)
            out["peak_process_rss_kb"] = summary_record.get("peak_process_rss_kb", 0)
            if "processes_seen" in summary_record:
                out["processes_seen"] = summary_record["processes_seen"]
            for key in EBPF_SUMMARY_KEYS + MORE_SUMMARY_KEYS:
                if key in summary_record:
                    out[key] = summary_record[key]
            if GPU_SUMMARY_KEY in summary_record:
                out[GPU_SUMMARY_KEY] = summary_record[GPU_SUMMARY_KEY]
        else:
            out["total_cpu_time_secs"] = self.cpu_seconds
            out["peak_process_rss_kb"] = _int(self.peak_process_rss if self.have_process_rss else self.peak_mem)
            out["estimated"] = list(ESTIMATED_KEYS)
        return _ordered(out)


class _GpuAccumulator:
    """The summary's ``gpu`` from the samples' ``gpu`` parts, computed as the monitor
    computes it (csrc/core/gpu_sample.c): sizes in GiB, peaks over samples."""

    def __init__(self) -> None:
        self.seen = False
        self.enabled = False
        self.error: str | None = None
        self.device_count = 0
        self.total = 0
        self.peak_used = 0
        self.max_system = 0
        self.max_process: float | None = None
        self.peak_tree = 0

    def add(self, gpu: Any) -> None:
        if not isinstance(gpu, dict):
            return
        self.seen = True
        systems = gpu.get("system_metrics")
        devices = [d for d in systems if isinstance(d, dict)] if isinstance(systems, list) else []
        if gpu.get("collection_method") != "nvml" and not devices:
            if isinstance(gpu.get("error"), str) and not self.enabled:
                self.error = gpu["error"]  # asked for, but off: why
            return
        self.enabled = True
        self.error = None
        self.device_count = max(self.device_count, len(devices))
        totals = [_num(d.get("memory_total"), None) for d in devices]
        totals = [t for t in totals if t is not None]
        if totals:
            self.total = max(self.total, sum(totals))
        used = [_num(d.get("memory_used"), None) for d in devices]
        used = [u for u in used if u is not None]
        if used:
            self.peak_used = max(self.peak_used, sum(used))
        for d in devices:
            self.max_system = max(self.max_system, _num(d.get("system_utilization_gpu")))
        procs = gpu.get("process_data")
        tree = 0
        for p in procs if isinstance(procs, list) else []:
            if not isinstance(p, dict):
                continue
            util = _num(p.get("gpu_utilization"), None)
            if util is not None:
                self.max_process = util if self.max_process is None else max(self.max_process, util)
            tree += _num(p.get("memory_usage"))
        self.peak_tree = max(self.peak_tree, tree)

    def result(self) -> dict | None:
        if not self.seen:
            return None
        out = {
            "enabled": self.enabled,
            "device_count": _int(self.device_count),
            "total_memory_gb": self.total / _GIB,
            "peak_used_memory_gb": self.peak_used / _GIB,
            "max_system_gpu_utilization": _int(self.max_system),
            "max_process_gpu_utilization": None if self.max_process is None else _int(self.max_process),
            "process_memory_usage_gb": self.peak_tree / _GIB,
        }
        if self.error:
            out["error"] = self.error
        return out


def gpu_summary_of(samples: Iterable[dict]) -> dict | None:
    """The summary's ``gpu`` object from sample dicts (``None`` when none has a ``gpu``
    part): ``enabled``, ``device_count``, ``total_memory_gb`` (the devices' memory
    together), ``peak_used_memory_gb`` (the largest memory in use on all devices at
    one sample), ``max_system_gpu_utilization``, ``max_process_gpu_utilization`` (one
    process of the tree, ``None`` when never read) and ``process_memory_usage_gb`` (the
    largest GPU memory of the tree at one sample)."""
    acc = _GpuAccumulator()
    for sample in samples:
        if not isinstance(sample, dict):
            continue
        view = sample.get("aggregated") if _formats.sample_kind(sample) == "tree" else sample
        if isinstance(view, dict):
            acc.add(view.get("gpu"))
    return acc.result()


def syscall_fractions(syscalls: dict, elapsed: float | None) -> dict:
    """denet's summary ``syscalls`` from a cumulative ``ebpf.syscalls`` part: the rate over
    the run and the share of each category (process calls stand in for CPU, as in the
    analysis engine)."""
    total = _num(syscalls.get("total"))
    by_cat = syscalls.get("by_category") if isinstance(syscalls.get("by_category"), dict) else {}

    def share(cat):
        return _num(by_cat.get(cat)) / total if total > 0 else None

    return {
        "avg_syscall_rate_per_sec": total / elapsed if elapsed and elapsed > 0 else None,
        "avg_io_syscall_fraction": share("file_io"),
        "avg_memory_syscall_fraction": share("memory"),
        "avg_cpu_syscall_fraction": share("process"),
        "avg_network_syscall_fraction": share("network"),
    }


def memory_characterization(perf: dict, psi_values: list[float]) -> dict:
    """denet's ``memory_characterization`` from counter totals (None where unknown) and
    the samples' ``psi_mem.some_avg10``; the same rules as the extension's."""
    def ratio(num, den):
        a, b = perf.get(num), perf.get(den)
        return a / b if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b > 0 else None

    ipc = ratio("instructions", "cycles")
    stall = ratio("stalled_backend", "cycles")
    psi = sum(psi_values) / len(psi_values) / 100.0 if psi_values else None
    counters = ipc is not None and stall is not None
    if counters and stall > 0.5 and ipc < 1.0:
        verdict = "memory-bound"
    elif counters and stall < 0.2 and ipc > 1.5:
        verdict = "cpu-bound"
    elif psi is not None and psi > 0.5:
        verdict = "memory-bound"
    elif counters:
        verdict = "mixed"
    else:
        verdict = "insufficient-data"
    return {
        "mean_ipc": ipc,
        "llc_miss_rate": ratio("cache_misses", "cache_refs"),
        "backend_stall_ratio": stall,
        "psi_some_fraction": psi,
        "verdict": verdict,
    }


def _ordered(summary: dict) -> dict:
    keys = list(SUMMARY_KEYS) + list(EBPF_SUMMARY_KEYS) + [GPU_SUMMARY_KEY] + list(MORE_SUMMARY_KEYS)
    out = {k: summary[k] for k in keys if k in summary}
    out.update((k, v) for k, v in summary.items() if k not in out)
    return out


def _summary_from_record(record: dict) -> dict:
    """A summary record taken as is (used when a file holds no samples)."""
    out = {k: record[k] for k in SUMMARY_KEYS + EBPF_SUMMARY_KEYS + (GPU_SUMMARY_KEY,) + MORE_SUMMARY_KEYS
           if k in record}
    for key in SUMMARY_KEYS:
        out.setdefault(key, 0.0 if key in ("total_time_secs", "avg_cpu_usage", "total_cpu_time_secs") else 0)
    return _ordered(out)


def summarize_records(records: Iterable[tuple[str, dict]], elapsed_time: float | None = None) -> dict:
    """Summary of ``(kind, record)`` pairs (see the module docstring)."""
    acc = _Accumulator()
    summary_record = None
    for kind, record in records:
        if kind in _formats.SAMPLE_KINDS:
            acc.add(kind, record)
        elif kind == "summary":
            summary_record = record
    if acc.count == 0 and summary_record is not None:
        return _summary_from_record(summary_record)
    return acc.result(elapsed_time, summary_record)


def summarize_samples(samples: Iterable[dict], elapsed_time: float | None = None) -> dict:
    """Summary of sample dicts (tree or flat; other records are recognised by kind)."""
    pairs = (p for p in (_formats.parse_item(s) for s in samples) if p is not None)
    return summarize_records(pairs, elapsed_time)


def generate_summary_from_metrics_json(items: Iterable[Any], elapsed_time: float) -> dict:
    """Summary of samples given as JSON strings or dicts.

    Args:
        items: JSON strings (one record each) or already parsed dicts; tree and
            flat samples, metadata and summary records may be mixed.  Items that
            are not valid denet records (not JSON, not an object, a field of the
            wrong type, a number that is not finite) are skipped and counted.
        elapsed_time: wall time of the run in seconds; becomes ``total_time_secs``.

    Returns:
        The summary ``dict`` (keys as ``ProcessMonitor.get_summary()``), plus
        ``"skipped_records"`` (how many items were skipped) when that is not 0.
    """
    if isinstance(items, (str, bytes, dict)):
        raise TypeError("items must be a list of JSON strings or dicts, not a single " + type(items).__name__)
    if isinstance(elapsed_time, bool) or not isinstance(elapsed_time, (int, float)):
        raise TypeError(f"elapsed_time must be a number of seconds, not {type(elapsed_time).__name__}")
    if not math.isfinite(elapsed_time) or elapsed_time < 0:
        raise ValueError(f"elapsed_time must be a finite number >= 0, got {elapsed_time}")
    pairs = []
    skipped = 0
    for item in items:
        result = _formats.check_item(item)
        if isinstance(result, tuple):
            pairs.append(result)
        else:
            skipped += 1  # blank strings count too: each item was meant to be a record
    summary = summarize_records(pairs, float(elapsed_time))
    if skipped:
        summary["skipped_records"] = skipped
    return summary


def summarize_file(path: str | os.PathLike, format: str | None = None) -> tuple[dict, _formats.FileRecords]:
    """The summary of a file and what was read from it (for ``denet stats``, which
    reports the problems); see :func:`generate_summary_from_file`."""
    path = os.fspath(path)
    contents = _formats.read_file(path, format)
    if not any(kind in _formats.SAMPLE_KINDS or kind == "summary" for kind, _ in contents.records):
        if not contents.records and not contents.problems:
            raise OSError(f"{path}: file is empty, no samples to summarise")
        detail = f"; skipped {contents.describe_problems()}" if contents.problems else ""
        raise OSError(
            f"{path}: no denet samples found (not a file written by denet --out or a monitor's "
            f"output_file?){detail}"
        )
    summary = summarize_records(contents.records)
    if contents.problems:
        summary["skipped_records"] = len(contents.problems)
    return summary, contents


def generate_summary_from_file(path: str | os.PathLike) -> dict:
    """Summary of a file recorded by denet (``output_file`` or ``denet --out``).

    Reads every format denet writes: JSON lines, a JSON array (``"json"``) and CSV
    (no summary record there, so CPU time and peak process RSS are estimated from
    the samples).  The format is told from the content.  Lines that are not valid
    denet records (not JSON, a field of the wrong type, a number that is not
    finite, a last line cut short) are skipped; the summary then says how many in
    ``"skipped_records"``.

    Raises:
        OSError: the file is missing or unreadable, empty, or holds no sample
            (and no summary) record; the message says why lines were skipped.
    """
    return summarize_file(path)[0]
