"""denet.analysis: utilities for samples collected by denet.

The functions take a list of sample ``dict``s -- what
``ProcessMonitor.get_samples()`` or :func:`load_metrics` return -- and work on
both shapes denet produces:

* flat samples (``include_children=False``): one ``Metrics`` dict each;
* tree samples (default): ``{"ts_ms", "parent", "children", "aggregated"}``;
  statistics of the whole tree are taken from ``aggregated``.

Metadata and summary records (``"kind": "metadata"``/``"summary"``) in the list
are ignored by the statistics functions.  The legacy keys ``net_rx_bytes`` and
``net_tx_bytes`` are read as ``sys_net_rx_bytes`` and ``sys_net_tx_bytes``.

Names and results follow upstream denet's ``denet.analysis``, with these fixes:
unknown aggregation methods raise ``ValueError`` instead of silently using the
mean; :func:`process_tree_analysis` understands denet's own tree samples;
:func:`load_metrics` uses the ``kind`` tags instead of guessing from text; CSV
output flattens nested fields into dotted columns and is quoted by Python's
``csv`` module; I/O totals of tree samples include children that exited.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from typing import Any

from . import _formats, _summary

__all__ = [
    "aggregate_metrics",
    "find_peaks",
    "resource_utilization",
    "convert_format",
    "load_metrics",
    "save_metrics",
    "process_tree_analysis",
]

#: Fields combined by :func:`aggregate_metrics` (``ts_ms`` takes the window's
#: last value; ``cpu_core`` is an index, not a quantity, and is left alone).
def _aggregate_fields() -> tuple[str, ...]:
    """Numeric Metrics fields, legacy network keys and ``process_count``."""
    skip = ("ts_ms", "cpu_core")
    return (tuple(f for f in _formats.schema_fields() if f not in skip)
            + tuple(_formats.LEGACY_KEYS) + ("process_count",))

_METHODS = ("mean", "max", "min")
_FORMATS = ("json", "jsonl", "csv")
_MiB = 1024 * 1024


# --------------------------------------------------------------------------
# helpers


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _samples(metrics) -> list[dict]:
    """The sample dicts of ``metrics`` (metadata/summary records dropped)."""
    if metrics is None:
        return []
    if isinstance(metrics, dict):
        raise TypeError("metrics must be a list of sample dicts, not a single dict")
    out = []
    for m in metrics:
        if not isinstance(m, dict):
            raise TypeError(f"metrics must contain dicts, found {type(m).__name__}")
        if _formats.classify(m) in _formats.NON_SAMPLE_KINDS:
            continue
        out.append(m)
    return out


def _view(sample: dict) -> dict:
    """The whole-tree metrics of a sample: ``aggregated`` for tree samples
    (with the sample's ``ts_ms``), the sample itself for flat ones; legacy keys
    renamed."""
    if _formats.sample_kind(sample) == "tree":
        agg = sample.get("aggregated")
        view = _formats.normalize_metrics(agg) if isinstance(agg, dict) else {}
        if "ts_ms" in sample:
            view["ts_ms"] = sample["ts_ms"]
        return view
    return _formats.normalize_metrics(sample)


def _combine(values: list, method: str):
    if method == "mean":
        return sum(values) / len(values)
    if method == "max":
        return max(values)
    return min(values)


def _aggregate_dicts(dicts: list[dict], method: str) -> dict:
    """First dict of the window with every numeric field combined over the window."""
    base = dict(dicts[0])
    for field in _aggregate_fields():
        if field not in base:
            continue
        values = [d[field] for d in dicts if _is_number(d.get(field))]
        if values:
            base[field] = _combine(values, method)
    last = dicts[-1]
    if "ts_ms" in last:
        base["ts_ms"] = last["ts_ms"]
    return base


# --------------------------------------------------------------------------
# public API


def aggregate_metrics(
    metrics: list[dict[str, Any]], window_size: int = 10, method: str = "mean"
) -> list[dict[str, Any]]:
    """Combine consecutive samples into windows to reduce data size.

    Each window of ``window_size`` samples becomes one dict: a copy of the
    window's first sample whose numeric fields (the numeric Metrics fields) are
    replaced by their mean, max or min over the window, whose ``ts_ms`` is the
    window's last, marked with ``_aggregated``, ``_window_size`` (samples in
    that window; the last window may be shorter) and ``_aggregation_method``.
    For tree samples ``aggregated`` and ``parent`` are combined field by field
    and ``children`` is the window's last list.

    Args:
        metrics: sample dicts.
        window_size: samples per window; ``<= 1`` returns the samples unchanged.
        method: ``"mean"``, ``"max"`` or ``"min"``.

    Raises:
        ValueError: unknown ``method``.
    """
    if method not in _METHODS:
        raise ValueError(f"unknown aggregation method {method!r}; use one of {', '.join(_METHODS)}")
    if isinstance(window_size, bool) or not isinstance(window_size, int):
        raise TypeError(f"window_size must be an int, not {type(window_size).__name__}")
    samples = _samples(metrics)
    if not samples:
        return []
    if window_size <= 1:
        return list(samples)

    result = []
    for i in range(0, len(samples), window_size):
        window = samples[i : i + window_size]
        if _formats.sample_kind(window[0]) == "tree":
            out = dict(window[0])
            for part in ("aggregated", "parent"):
                dicts = [s[part] for s in window if isinstance(s.get(part), dict)]
                if dicts:
                    out[part] = _aggregate_dicts(dicts, method)
            if "children" in window[-1]:
                out["children"] = window[-1]["children"]
            if "ts_ms" in window[-1]:
                out["ts_ms"] = window[-1]["ts_ms"]
        else:
            out = _aggregate_dicts(window, method)
        out["_aggregated"] = True
        out["_window_size"] = len(window)
        out["_aggregation_method"] = method
        result.append(out)
    return result


def _field_value(sample: dict, field: str):
    """``field`` of a sample: top level, else in ``aggregated`` (tree samples),
    else a dotted path such as ``"parent.cpu_usage"``; legacy net keys too."""
    for name in (field, _formats.LEGACY_KEYS.get(field), _legacy_of(field)):
        if name and name in sample:
            return sample[name]
    agg = sample.get("aggregated")
    if isinstance(agg, dict):
        for name in (field, _legacy_of(field)):
            if name and name in agg:
                return agg[name]
    if "." in field:
        node: Any = sample
        for part in field.split("."):
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        return node
    return None


def _legacy_of(field: str) -> str | None:
    for old, new in _formats.LEGACY_KEYS.items():
        if new == field:
            return old
    return None


def find_peaks(
    metrics: list[dict[str, Any]],
    field: str = "cpu_usage",
    threshold: float = 0.8,
    window_size: int = 5,
) -> list[dict[str, Any]]:
    """Local maxima of ``field`` that reach ``threshold`` times its maximum.

    The values are first smoothed with a centred moving average of
    ``window_size`` samples (none when ``window_size <= 1``).  A peak is an
    interior sample whose smoothed value is higher than both neighbours' (a flat
    top counts once, at its first sample) and at least ``threshold * max(raw
    values)``.  The first and last samples are never peaks.

    ``field`` is looked up at the top level, then in ``aggregated`` (tree
    samples), or as a dotted path (``"parent.mem_rss_kb"``).

    Returns:
        Copies of the peak samples, each with ``"_index"``, its position in
        ``metrics``.  ``[]`` when any sample lacks a numeric ``field``.
    """
    if metrics is None:
        return []
    indexed = [
        (i, m)
        for i, m in enumerate(metrics)
        if isinstance(m, dict) and _formats.classify(m) not in _formats.NON_SAMPLE_KINDS
    ]
    if not indexed:
        return []
    values = []
    for _, m in indexed:
        v = _field_value(m, field)
        if not _is_number(v):
            return []
        values.append(v)

    absolute_threshold = max(values) * threshold
    if window_size > 1:
        half = window_size // 2
        smoothed = []
        for i in range(len(values)):
            window = values[max(0, i - half) : min(len(values), i + half + 1)]
            smoothed.append(sum(window) / len(window))
        values = smoothed

    peaks = []
    n = len(values)
    i = 1
    while i < n - 1:
        if values[i] > values[i - 1]:
            j = i
            while j + 1 < n - 1 and values[j + 1] == values[i]:
                j += 1
            if values[j + 1] < values[i] and values[i] >= absolute_threshold:
                index, sample = indexed[i]
                peak = dict(sample)
                peak["_index"] = index
                peaks.append(peak)
            i = j + 1
        else:
            i += 1
    return peaks


def resource_utilization(metrics: list[dict[str, Any]]) -> dict[str, Any]:
    """Statistics of CPU, memory, threads, I/O and time over the samples.

    Keys (each present only when every sample has the field): ``avg_cpu``,
    ``max_cpu``, ``min_cpu``, ``median_cpu``, ``stdev_cpu`` (2+ samples);
    ``avg_mem_mb``, ``max_mem_mb``, ``min_mem_mb``, ``median_mem_mb``,
    ``stdev_mem_mb`` (RSS in MiB); ``avg_threads``, ``max_threads``,
    ``min_threads``; ``avg_processes``, ``max_processes`` (tree samples);
    ``total_read_mb``, ``total_write_mb`` (block I/O), ``total_syscall_read_mb``,
    ``total_syscall_write_mb``, ``total_sys_net_rx_mb``, ``total_sys_net_tx_mb``
    (MiB, totals as in the summary: children that exited included);
    ``total_time_sec`` (last ``ts_ms`` minus first).  Tree samples are measured
    through ``aggregated``.
    """
    samples = _samples(metrics)
    if not samples:
        return {}
    views = [_view(s) for s in samples]
    result: dict[str, Any] = {}

    def has(field: str) -> bool:
        return all(_is_number(v.get(field)) for v in views)

    if has("cpu_usage"):
        cpu = [v["cpu_usage"] for v in views]
        result["avg_cpu"] = statistics.mean(cpu)
        result["max_cpu"] = max(cpu)
        result["min_cpu"] = min(cpu)
        result["median_cpu"] = statistics.median(cpu)
        if len(cpu) > 1:
            result["stdev_cpu"] = statistics.stdev(cpu)

    if has("mem_rss_kb"):
        mem = [v["mem_rss_kb"] for v in views]
        result["avg_mem_mb"] = statistics.mean(mem) / 1024
        result["max_mem_mb"] = max(mem) / 1024
        result["min_mem_mb"] = min(mem) / 1024
        result["median_mem_mb"] = statistics.median(mem) / 1024
        if len(mem) > 1:
            result["stdev_mem_mb"] = statistics.stdev(mem) / 1024

    if has("thread_count"):
        threads = [v["thread_count"] for v in views]
        result["avg_threads"] = statistics.mean(threads)
        result["max_threads"] = max(threads)
        result["min_threads"] = min(threads)

    if has("process_count"):
        procs = [v["process_count"] for v in views]
        result["avg_processes"] = statistics.mean(procs)
        result["max_processes"] = max(procs)

    totals = _summary.summarize_samples(samples)
    for field, key, total in (
        ("disk_read_bytes", "total_read_mb", "total_disk_read_bytes"),
        ("disk_write_bytes", "total_write_mb", "total_disk_write_bytes"),
        ("syscall_read_bytes", "total_syscall_read_mb", "total_syscall_read_bytes"),
        ("syscall_write_bytes", "total_syscall_write_mb", "total_syscall_write_bytes"),
        ("sys_net_rx_bytes", "total_sys_net_rx_mb", "total_sys_net_rx_bytes"),
        ("sys_net_tx_bytes", "total_sys_net_tx_mb", "total_sys_net_tx_bytes"),
    ):
        if has(field):
            result[key] = totals[total] / _MiB

    if _is_number(samples[0].get("ts_ms")) and _is_number(samples[-1].get("ts_ms")):
        result["total_time_sec"] = (samples[-1]["ts_ms"] - samples[0]["ts_ms"]) / 1000
    return result


def convert_format(
    metrics: list[dict[str, Any]] | str | os.PathLike, to_format: str = "csv", indent: int | None = None
) -> str:
    """Render samples as ``"json"`` (an array), ``"jsonl"`` or ``"csv"`` text.

    Args:
        metrics: sample dicts, or the path of a file :func:`load_metrics` reads.
        to_format: ``"json"``, ``"jsonl"`` (one object a line, no trailing
            newline) or ``"csv"`` (nested fields as dotted columns, header =
            union of all columns with the ``Metrics`` fields first, quoted by
            the ``csv`` module).
        indent: indentation for ``"json"`` (``None``: compact).

    Returns:
        The text; ``""`` when there are no samples.

    Raises:
        ValueError: unknown ``to_format``.
    """
    if to_format not in _FORMATS:
        raise ValueError(f"Unknown format: {to_format}; unknown format {to_format!r}; use one of {', '.join(_FORMATS)}")
    if isinstance(metrics, (str, os.PathLike)):
        metrics = load_metrics(metrics)
    if not metrics:
        return ""
    metrics = list(metrics)
    if to_format == "json":
        return json.dumps(metrics, indent=indent)
    if to_format == "jsonl":
        return "\n".join(json.dumps(m) for m in metrics)
    return _formats.to_csv(metrics)


def process_tree_analysis(metrics: list[dict[str, Any]]) -> dict[str, Any]:
    """Resource use of each process of a tree over time.

    Understands denet's tree samples (``parent``, ``children`` as
    ``{"pid", "ppid", "command", "metrics"}``, ``aggregated``) and upstream's older
    shape (process fields at the top level with a ``pid``, ``children`` or
    ``child_processes`` holding process dicts).

    Returns:
        ``{}`` for flat samples or an empty list, else::

            {"main_process": stats,            # plus "pid" when known
             "child_processes": {pid: stats},  # plus "command" when known
             "total": {...}}

        where ``stats`` has ``avg_cpu``, ``max_cpu``, ``avg_memory_mb``,
        ``max_memory_mb``, ``avg_threads``, ``max_threads``, ``samples`` (number
        of samples the process appears in), ``first_ts_ms``/``last_ts_ms`` (or
        ``None``) and, when present, ``disk_read_bytes``/``disk_write_bytes``
        (its last cumulative values).  ``total`` describes the whole tree per
        sample (from ``aggregated`` when present, else the sum over the
        processes of each sample): ``avg_cpu``, ``max_cpu``, ``avg_memory_mb``,
        ``max_memory_mb``, ``avg_threads``, ``max_threads``, ``max_processes``
        and ``unique_processes`` (distinct processes seen).
    """
    samples = _samples(metrics)
    if not samples:
        return {}
    if not any(k in samples[0] for k in ("children", "child_processes", "parent", "aggregated")):
        return {}

    MAIN = object()
    series: dict[Any, dict[str, Any]] = {}
    main_pid = None
    totals = {"cpu": [], "memory": [], "threads": [], "processes": []}

    def record(key, metrics_dict: dict, ts, command=None):
        m = _formats.normalize_metrics(metrics_dict)
        entry = series.setdefault(
            key, {"cpu": [], "memory": [], "threads": [], "ts": [], "command": None, "last": {}}
        )
        entry["cpu"].append(m.get("cpu_usage", 0) if _is_number(m.get("cpu_usage")) else 0)
        entry["memory"].append(m.get("mem_rss_kb", 0) if _is_number(m.get("mem_rss_kb")) else 0)
        entry["threads"].append(m.get("thread_count", 1) if _is_number(m.get("thread_count")) else 1)
        ts = m.get("ts_ms", ts)
        if _is_number(ts):
            entry["ts"].append(ts)
        if command is not None:
            entry["command"] = command
        for field in ("disk_read_bytes", "disk_write_bytes"):
            if _is_number(m.get(field)):
                entry["last"][field] = m[field]
        return entry["cpu"][-1], entry["memory"][-1], entry["threads"][-1]

    for sample in samples:
        ts = sample.get("ts_ms")
        sums = [0.0, 0.0, 0.0]
        count = 0
        if "parent" in sample or "aggregated" in sample:  # denet tree sample
            parent = sample.get("parent")
            if isinstance(parent, dict):
                for i, v in enumerate(record(MAIN, parent, ts)):
                    sums[i] += v
                count += 1
            if _is_number(sample.get("pid")):
                main_pid = sample["pid"]
        else:  # upstream shape: the main process's fields at the top level
            main_pid = sample.get("pid", main_pid)
            for i, v in enumerate(record(MAIN, sample, ts)):
                sums[i] += v
            count += 1
        children = sample.get("children", sample.get("child_processes")) or []
        for n, child in enumerate(children):
            if not isinstance(child, dict):
                continue
            inner = child.get("metrics") if isinstance(child.get("metrics"), dict) else child
            pid = child.get("pid", inner.get("pid", f"child-{n}"))
            for i, v in enumerate(record(pid, inner, ts, child.get("command"))):
                sums[i] += v
            count += 1
        agg = sample.get("aggregated")
        if isinstance(agg, dict):
            agg = _formats.normalize_metrics(agg)
            totals["cpu"].append(agg.get("cpu_usage", sums[0]))
            totals["memory"].append(agg.get("mem_rss_kb", sums[1]))
            totals["threads"].append(agg.get("thread_count", sums[2]))
            totals["processes"].append(agg.get("process_count", count))
        else:
            totals["cpu"].append(sums[0])
            totals["memory"].append(sums[1])
            totals["threads"].append(sums[2])
            totals["processes"].append(count)

    def stats(entry: dict) -> dict:
        out = {
            "avg_cpu": statistics.mean(entry["cpu"]),
            "max_cpu": max(entry["cpu"]),
            "avg_memory_mb": statistics.mean(entry["memory"]) / 1024,
            "max_memory_mb": max(entry["memory"]) / 1024,
            "avg_threads": statistics.mean(entry["threads"]),
            "max_threads": max(entry["threads"]),
            "samples": len(entry["cpu"]),
            "first_ts_ms": min(entry["ts"]) if entry["ts"] else None,
            "last_ts_ms": max(entry["ts"]) if entry["ts"] else None,
        }
        out.update(entry["last"])
        return out

    result: dict[str, Any] = {"main_process": {}, "child_processes": {}, "total": {}}
    for key, entry in series.items():
        if not entry["cpu"]:
            continue
        st = stats(entry)
        if key is MAIN:
            if main_pid is not None:
                st["pid"] = main_pid
            result["main_process"] = st
        else:
            if entry["command"] is not None:
                st["command"] = entry["command"]
            result["child_processes"][key] = st

    total = result["total"]
    total["avg_cpu"] = statistics.mean(totals["cpu"])
    total["max_cpu"] = max(totals["cpu"])
    total["avg_memory_mb"] = statistics.mean(totals["memory"]) / 1024
    total["max_memory_mb"] = max(totals["memory"]) / 1024
    total["avg_threads"] = statistics.mean(totals["threads"])
    total["max_threads"] = max(totals["threads"])
    total["max_processes"] = max(totals["processes"])
    total["unique_processes"] = len(series)
    return result


def load_metrics(path: str | os.PathLike, include_metadata: bool = False) -> list[dict[str, Any]]:
    """Read samples from a file denet wrote: JSON lines, a JSON array or CSV.

    The format is told from the content, whatever the file is called.  Records
    are recognised by their ``kind`` tag (untagged lines by their keys).  Samples
    are returned without the tag and with legacy keys renamed.  CSV rows come back
    as the dicts they were written from: dotted columns nested again, ``children``
    parsed from its JSON cell, numbers as numbers, empty cells as ``None`` for
    ``cpu_core`` and missing otherwise (CSV holds no metadata or summary).

    Args:
        path: the file.
        include_metadata: also return the metadata and summary records (tagged
            with their ``kind``), in file order.

    Returns:
        The samples (and, if asked, the other records); ``[]`` for an empty file.

    Raises:
        OSError: the file cannot be read.
        ValueError: a line is not a valid denet record (not JSON, not an object,
            not a denet record, a field of the wrong type, a number that is not
            finite); the message gives the line.  An unterminated last line,
            which a monitor killed mid-write leaves behind, is skipped.  (The
            summary functions and ``denet stats`` skip and count bad lines
            instead.)
    """
    path = os.fspath(path)
    contents = _formats.read_file(path)
    for problem in contents.problems:
        if contents.incomplete_last_line and problem is contents.problems[-1]:
            continue
        where = f"{path}:{problem.line}:" if problem.line is not None else f"{path}: item {problem.item}:"
        raise ValueError(f"{where} {problem.reason}")
    out = []
    for kind, record in contents.records:
        if kind in _formats.SAMPLE_KINDS:
            out.append(_formats.strip_kind(record))
        elif include_metadata:
            out.append(_formats.tag(record, kind))
    return out


def _default_metadata(samples: list[dict]) -> dict:
    t0 = None
    for s in samples:
        if _is_number(s.get("ts_ms")):
            t0 = s["ts_ms"]
            break
    return {
        "pid": os.getpid(),
        "cmd": list(sys.argv) if sys.argv and sys.argv[0] else ["python"],
        "executable": sys.executable,
        "t0_ms": t0 if t0 is not None else int(time.time() * 1000),
    }


def save_metrics(
    metrics: list[dict[str, Any]],
    path: str | os.PathLike,
    format: str = "jsonl",
    include_metadata: bool = True,
    metadata: dict[str, Any] | None = None,
) -> None:
    """Write samples to ``path``.

    Args:
        metrics: sample dicts (metadata/summary records among them are written
            as such in JSONL and skipped in JSON and CSV).
        path: the file (overwritten).
        format: ``"jsonl"`` (each line tagged with ``kind``), ``"json"`` (an
            array of samples) or ``"csv"`` (see :func:`convert_format`).
        include_metadata: JSONL only: start with a metadata line, unless
            ``metrics`` already holds one.
        metadata: the metadata to write (``pid``, ``cmd``, ``executable``,
            ``t0_ms``); default: this Python process, ``t0_ms`` = first sample.

    Raises:
        ValueError: unknown ``format`` (checked before the file is touched).
    """
    if format not in _FORMATS:
        raise ValueError(f"Unknown format: {format}; unknown format {format!r}; use one of {', '.join(_FORMATS)}")
    items = [m for m in (metrics or []) if isinstance(m, dict)]
    samples = [m for m in items if _formats.classify(m) not in _formats.NON_SAMPLE_KINDS]
    with open(os.fspath(path), "w", encoding="utf-8", newline="") as f:
        if format == "json":
            json.dump(samples, f, indent=2)
            f.write("\n")
        elif format == "csv":
            if samples:
                _formats.write_csv(samples, f)
        else:
            has_meta = any(_formats.classify(m) == "metadata" for m in items)
            if include_metadata and not has_meta:
                meta = dict(metadata) if metadata is not None else _default_metadata(samples)
                f.write(json.dumps(_formats.tag(meta, "metadata")) + "\n")
            for item in items:
                kind = _formats.classify(item) or "sample"
                f.write(json.dumps(_formats.tag(item, kind)) + "\n")
