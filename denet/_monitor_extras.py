"""Python methods added to :class:`denet.ProcessMonitor` (a C type that allows it):

* ``_repr_html_()``: the report (:mod:`denet.report`) when a monitor is shown in Jupyter;
* ``to_dataframe()``: the samples as a pandas DataFrame, one row per process per sample;
* ``plot()``: a matplotlib figure of CPU, memory, disk I/O and processes over time.

pandas and matplotlib are optional: they are imported when these methods are called,
and a clear ImportError says how to install them when they are missing.
"""

from __future__ import annotations

import shlex
from typing import Any, Sequence

_INSTALL = {
    "pandas": "apt-get install python3-pandas (Debian) or pip install pandas",
    "matplotlib": "apt-get install python3-matplotlib (Debian) or pip install matplotlib",
}


def _require(module: str, what: str):
    import importlib  # noqa: PLC0415

    try:
        return importlib.import_module(module)
    except ImportError as e:
        top = module.split(".")[0]
        raise ImportError(f"{what} needs {top}, which is not installed ({e}); install it: {_INSTALL[top]}") from e


def _column(name: str, unit: str) -> tuple[str, float]:
    """DataFrame column name (with its unit) and divisor for a SCHEMA field."""
    if unit == "KiB" and name.endswith("_kb"):
        return name[:-3] + "_mib", 1024.0
    if unit == "%":
        return name + "_pct", 1.0
    return name, 1.0


def _schema() -> list[tuple[str, str, float]]:
    from . import _denet  # noqa: PLC0415

    return [(f["name"], *_column(f["name"], f["unit"])) for f in _denet.SCHEMA]


def sample_rows(samples: Sequence[dict], metadata: dict | None = None) -> list[dict[str, Any]]:
    """One dict per process per sample: ``elapsed_s``, ``pid``, ``ppid`` (when the sample
    carries it), ``command``, ``is_root``, then the Metrics fields with their units in
    their names (``cpu_usage_pct``, ``mem_rss_mib``, ``disk_write_bytes``, ...)."""
    from .report import _processes_of, _sample_ts, _t0  # noqa: PLC0415

    metadata = metadata or {}
    schema = _schema()
    known = {name for name, _, _ in schema}
    root_pid = metadata.get("pid")
    root_cmd = metadata.get("cmd")
    root_command = shlex.join(map(str, root_cmd)) if isinstance(root_cmd, list) else root_cmd
    timed = sorted(((ts, s) for s in samples if isinstance(s, dict) and (ts := _sample_ts(s)) is not None),
                   key=lambda p: p[0])
    if not timed:
        return []
    t0 = _t0(metadata, None)
    base = t0 if t0 is not None and t0 <= timed[0][0] else timed[0][0]
    rows = []
    for ts, sample in timed:
        for pid, child, metrics in _processes_of(sample, root_pid):
            is_root = not child
            row: dict[str, Any] = {
                "elapsed_s": (ts - base) / 1000.0,
                "pid": pid,
            }
            ppid = metrics.get("ppid", child.get("ppid") if child else None)
            if ppid is not None:
                row["ppid"] = ppid
            row["command"] = root_command if is_root else child.get("command")
            row["is_root"] = is_root
            for name, column, divisor in schema:
                value = metrics.get(name)
                row[column] = value / divisor if divisor != 1.0 and isinstance(value, (int, float)) else value
            for key, value in metrics.items():  # fields this build adds beyond SCHEMA
                if key not in known and key != "ppid" and not isinstance(value, (dict, list)):
                    row[key] = value
            rows.append(row)
    return rows


def to_dataframe(self):
    """The samples as a pandas DataFrame: one row per process per sample.

    Columns: ``elapsed_s`` (seconds since the start), ``pid``, ``ppid`` (when the samples
    carry it), ``command``, ``is_root`` (the monitored process itself), then every
    Metrics field with its unit in its name: ``cpu_usage_pct``, ``mem_rss_mib``,
    ``mem_vms_mib``, ``disk_read_bytes``, ... (flat samples give one row per sample).
    Needs pandas; raises ImportError saying how to install it when it is missing.
    """
    pd = _require("pandas", "ProcessMonitor.to_dataframe()")
    rows = sample_rows(self.get_samples(), self.get_metadata())
    if not rows:
        columns = ["elapsed_s", "pid", "command", "is_root"] + [c for _, c, _ in _schema()]
        return pd.DataFrame(columns=columns)
    return pd.DataFrame(rows)


def plot(self, title: str | None = None):
    """A matplotlib Figure: CPU, memory, disk I/O and processes against seconds since the
    start (``fig.savefig("run.png")`` to keep it).  Needs matplotlib; raises ImportError
    saying how to install it when it is missing."""
    _require("matplotlib", "ProcessMonitor.plot()")
    figure_mod = _require("matplotlib.figure", "ProcessMonitor.plot()")
    from .report import _mem_unit, _byte_unit, _series  # noqa: PLC0415

    metadata = self.get_metadata() or {}
    s = _series(self.get_samples(), metadata.get("t0_ms"), metadata.get("pid"))
    fig = figure_mod.Figure(figsize=(9, 8), layout="constrained")
    axes = fig.subplots(4, 1, sharex=True)
    cpu, mem, disk, procs = axes
    cpu.plot(s.t[s.cpu_from:], s.cpu[s.cpu_from:], color="#2563eb", label="whole tree")
    cpu.set_ylabel("CPU %")
    mem_unit, mem_scale = _mem_unit(max(s.rss_kb, default=0))
    mem.plot(s.t, [v / mem_scale for v in s.rss_kb], color="#7c3aed", label="whole tree")
    mem.set_ylabel(f"RSS ({mem_unit})")
    io_unit, io_scale = _byte_unit(max(s.disk_read + s.disk_write, default=0))
    disk.plot(s.t, [v / io_scale for v in s.disk_write], color="#dc2626", label="written")
    disk.plot(s.t, [v / io_scale for v in s.disk_read], color="#16a34a", label="read")
    disk.set_ylabel(f"disk ({io_unit}, cumulative)")
    disk.legend(loc="upper left", fontsize="small")
    procs.step(s.t, s.procs, where="post", color="#2563eb", label="processes")
    procs.set_ylabel("processes")
    procs.set_xlabel("time since start (s)")
    for ax in axes:
        ax.grid(True, alpha=0.3)
        ax.set_ylim(bottom=0)
    cmd = metadata.get("cmd")
    if title is None:
        title = "denet: " + _short(" ".join(map(str, cmd))) if isinstance(cmd, list) else "denet report"
    fig.suptitle(title)
    return fig


def _short(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _repr_html_(self) -> str:
    from .report import monitor_html  # noqa: PLC0415

    return monitor_html(self)


def install(cls: type) -> None:
    """Add the methods to ``cls`` unless it already has them (a later C version may)."""
    for name, func in (("_repr_html_", _repr_html_), ("to_dataframe", to_dataframe), ("plot", plot)):
        if not hasattr(cls, name):
            setattr(cls, name, func)

