"""HTML report of a denet run: one self-contained page (inline CSS and SVG; no script,
no web font, nothing fetched from the network).

It holds the summary table, charts over time (CPU, memory, disk I/O, network I/O,
processes), a table of the processes, and, when the run has eBPF data, the top system
calls and an off-CPU flame graph.

Three ways to get it:

* ``denet report run.jsonl -o run.html`` or ``denet run --html run.html -- CMD``;
* ``ProcessMonitor._repr_html_()`` (a monitor shown in Jupyter) and :class:`SummaryTable`;
* the ``%%denet`` cell magic (``%load_ext denet``).

Functions: :func:`render_html` (a whole page), :func:`render_fragment` (a ``<div>`` for
notebooks), :func:`load_run` and :func:`write_report` (from a recorded file),
:func:`flame_graph_svg` (folded stacks to SVG), :func:`process_rows`.

Time runs in seconds since the start of the run; memory is shown in MiB or GiB.
"""

from __future__ import annotations

import html
import math
import os
import shlex
import time
import zlib
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from . import _formats

__all__ = [
    "Run", "SummaryTable", "flame_graph_svg", "load_run", "parse_folded", "process_rows",
    "render_fragment", "render_html", "write_report",
]

MAX_PROCESS_ROWS = 60
MAX_CHART_POINTS = 900
COLORS = {
    "blue": "#2563eb", "orange": "#ea580c", "green": "#16a34a", "purple": "#7c3aed",
    "teal": "#0891b2", "red": "#dc2626", "gray": "#64748b",
}

_esc = html.escape
_SVG_FONT = "system-ui, DejaVu Sans, sans-serif"


# --------------------------------------------------------------------------
# units


def fmt_bytes(n: Any) -> str:
    """``1536`` -> ``"1.5 KiB"``; ``None`` -> ``"-"``."""
    if not _is_num(n):
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"  # pragma: no cover


def fmt_mem_kb(kb: Any) -> str:
    """Memory given in KiB, shown in MiB (GiB from 1 GiB up)."""
    if not _is_num(kb):
        return "-"
    mib = float(kb) / 1024
    return f"{mib / 1024:.2f} GiB" if mib >= 1024 else f"{mib:.1f} MiB"


def fmt_secs(secs: Any) -> str:
    if not _is_num(secs):
        return "-"
    secs = float(secs)
    if secs < 60:
        return f"{secs:.2f} s" if secs < 10 else f"{secs:.1f} s"
    minutes, s = divmod(secs, 60)
    if minutes < 60:
        return f"{int(minutes)} min {s:.0f} s"
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours} h {minutes:02d} min"


def fmt_count(n: Any) -> str:
    return f"{int(n):,}" if _is_num(n) else "-"


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _byte_unit(max_value: float) -> tuple[str, float]:
    for unit, scale in (("GiB", 1024 ** 3), ("MiB", 1024 ** 2), ("KiB", 1024)):
        if max_value >= scale:
            return unit, scale
    return "B", 1.0


def _mem_unit(max_kb: float) -> tuple[str, float]:
    """Unit for memory given in KiB: MiB, or GiB from 2 GiB up (never KiB)."""
    return ("GiB", 1024.0 * 1024) if max_kb >= 2 * 1024 * 1024 else ("MiB", 1024.0)


# --------------------------------------------------------------------------
# a recorded run


@dataclass
class Run:
    """What a report is made of."""

    samples: list = field(default_factory=list)
    summary: dict | None = None
    metadata: dict | None = None
    offcpu_folded: Any = None
    problems: str = ""  # the lines of the file that could not be read, described ("" when none)


def load_run(path: str | os.PathLike, format: str | None = None) -> Run:
    """Read a file written by denet (``--out``/``output_file``), in any of its formats:
    JSON lines, a JSON array or CSV (``format`` forces one; else the content decides).

    The summary is the file's summary record when it has one (exact totals), else it is
    computed from the samples.  Lines that are not valid denet records are left out and
    described in ``Run.problems``.

    Raises:
        OSError: the file cannot be read, or holds no denet samples.
    """
    from ._summary import summarize_file  # noqa: PLC0415

    summary, contents = summarize_file(path, format)
    records = contents.records
    samples = [_formats.strip_kind(r) for kind, r in records if kind in _formats.SAMPLE_KINDS]
    metadata = next((r for kind, r in records if kind == "metadata"), None)
    recorded = next((r for kind, r in reversed(records) if kind == "summary"), None)
    if recorded:
        # keys the summary functions do not know (processes, off-CPU, ...) are kept
        summary.update((k, v) for k, v in recorded.items() if k != "kind" and k not in summary)
    return Run(samples=samples, summary=summary,
               metadata=_formats.strip_kind(metadata) if metadata else None,
               problems=contents.describe_problems())


def write_report(src: str | os.PathLike, out: str | os.PathLike, *, title: str | None = None,
                 offcpu_folded: Any = None) -> str:
    """Read ``src`` (see :func:`load_run`), write the HTML page to ``out``; returns ``out``."""
    run = load_run(src)
    page = render_html(run.samples, run.summary, run.metadata, offcpu_folded=offcpu_folded,
                       title=title or f"denet report: {os.path.basename(os.fspath(src))}")
    write_text(out, page)
    return os.fspath(out)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write text to path through a temporary file (a reader never sees half a page)."""
    path = os.fspath(path)
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


# --------------------------------------------------------------------------
# series over time


def _whole(sample: dict) -> dict:
    if _formats.sample_kind(sample) == "tree":
        agg = sample.get("aggregated")
        if isinstance(agg, dict):
            return agg
        parent = sample.get("parent")
        return parent if isinstance(parent, dict) else {}
    return sample


def _processes_of(sample: dict, root_pid: Any) -> list[tuple[Any, dict, dict]]:
    """``(pid, child entry or {}, metrics)`` for every process in a sample."""
    if _formats.sample_kind(sample) != "tree":
        return [(root_pid, {}, sample)]
    out = []
    parent = sample.get("parent")
    if isinstance(parent, dict):
        out.append((root_pid, {}, parent))
    for child in sample.get("children") or ():
        if isinstance(child, dict):
            metrics = child.get("metrics")
            out.append((child.get("pid"), child, metrics if isinstance(metrics, dict) else child))
    return out


def _sample_ts(sample: dict) -> float | None:
    ts = sample.get("ts_ms")
    if not _is_num(ts):
        ts = _whole(sample).get("ts_ms")
    return float(ts) if _is_num(ts) else None


@dataclass
class _Series:
    t: list = field(default_factory=list)          # seconds since the start
    cpu: list = field(default_factory=list)        # % of one core, whole tree
    cpu_root: list = field(default_factory=list)
    rss_kb: list = field(default_factory=list)
    rss_root_kb: list = field(default_factory=list)
    disk_read: list = field(default_factory=list)  # cumulative bytes, every process ever seen
    disk_write: list = field(default_factory=list)
    net_rx: list = field(default_factory=list)
    net_tx: list = field(default_factory=list)
    procs: list = field(default_factory=list)
    threads: list = field(default_factory=list)
    had_children: bool = False
    cpu_from: int = 0  # first index whose CPU is a rate over an interval (see _series)


def _series(samples: Sequence[dict], t0_ms: float | None, root_pid: Any) -> _Series:
    s = _Series()
    last_io: dict[Any, tuple[float, float]] = {}
    net = [0.0, 0.0]
    timed = [(ts, x) for x in samples if isinstance(x, dict) and (ts := _sample_ts(x)) is not None]
    timed.sort(key=lambda p: p[0])
    if not timed:
        return s
    base = t0_ms if t0_ms is not None and t0_ms <= timed[0][0] else timed[0][0]
    # A process's first read gives its CPU usage averaged since it started: for a process
    # that ran long before monitoring began (an attached one) that is not "now".
    first_root = _processes_of(timed[0][1], root_pid)
    if len(timed) > 1 and first_root and _num(first_root[0][2].get("uptime_secs")) >= 2:
        s.cpu_from = 1
    for ts, sample in timed:
        whole = _whole(sample)
        procs = _processes_of(sample, root_pid)
        root = procs[0][2] if procs and procs[0][0] == root_pid and not procs[0][1] else {}
        if len(procs) > 1:
            s.had_children = True
        for i, (pid, _, m) in enumerate(procs):
            key = pid if pid is not None else ("?", i)
            last_io[key] = (_num(m.get("disk_read_bytes")), _num(m.get("disk_write_bytes")))
        net[0] = max(net[0], _num(whole.get("sys_net_rx_bytes")))
        net[1] = max(net[1], _num(whole.get("sys_net_tx_bytes")))
        s.t.append((ts - base) / 1000.0)
        s.cpu.append(_num(whole.get("cpu_usage")))
        s.cpu_root.append(_num(root.get("cpu_usage")))
        s.rss_kb.append(_num(whole.get("mem_rss_kb")))
        s.rss_root_kb.append(_num(root.get("mem_rss_kb")))
        s.disk_read.append(sum(r for r, _ in last_io.values()))
        s.disk_write.append(sum(w for _, w in last_io.values()))
        s.net_rx.append(net[0])
        s.net_tx.append(net[1])
        count = whole.get("process_count")
        s.procs.append(_num(count) if _is_num(count) else len(procs))
        s.threads.append(_num(whole.get("thread_count")))
    return s


def _num(v: Any) -> float:
    return float(v) if _is_num(v) else 0.0


# --------------------------------------------------------------------------
# processes


_PROCESS_KEYS = {  # column -> keys a summary "processes" row may use for it
    "pid": ("pid",),
    "ppid": ("ppid",),
    "command": ("command", "cmd", "comm"),
    "cpu_secs": ("cpu_time_secs", "cpu_secs", "total_cpu_time_secs"),
    "peak_rss_kb": ("peak_rss_kb", "peak_mem_rss_kb", "max_rss_kb", "mem_rss_kb"),
    "disk_read_bytes": ("disk_read_bytes", "total_disk_read_bytes"),
    "disk_write_bytes": ("disk_write_bytes", "total_disk_write_bytes"),
    "exit_code": ("exit_code",),
}


def process_rows(samples: Sequence[dict], summary: Mapping | None = None,
                 metadata: Mapping | None = None) -> tuple[list[dict], bool]:
    """One row per process: ``pid, ppid, command, cpu_secs, peak_rss_kb, disk_read_bytes,
    disk_write_bytes, exit_code`` (None where unknown), heaviest CPU first.

    The summary's ``processes`` list is used when it has one (exact); otherwise rows are
    derived from the samples' children entries and the second value is True: CPU seconds
    are then estimated from ``cpu_usage`` over the sample intervals, peaks are the
    largest sampled RSS, and a process that lived between two samples is missing.
    """
    listed = summary.get("processes") if isinstance(summary, Mapping) else None
    if isinstance(listed, list) and listed:
        rows = []
        for entry in listed:
            if isinstance(entry, Mapping):
                row = {col: next((entry[k] for k in keys if k in entry), None)
                       for col, keys in _PROCESS_KEYS.items()}
                if isinstance(row["command"], list):
                    row["command"] = shlex.join(str(a) for a in row["command"])
                rows.append(row)
        return _sorted_rows(rows), False

    root_pid = (metadata or {}).get("pid", "root")
    root_cmd = (metadata or {}).get("cmd")
    rows_by_pid: dict[Any, dict] = {}
    prev_ts: float | None = None
    for sample in sorted((x for x in samples if isinstance(x, dict) and _sample_ts(x) is not None),
                         key=_sample_ts):
        ts = _sample_ts(sample)
        dt = (ts - prev_ts) / 1000.0 if prev_ts is not None else None
        for i, (pid, child, m) in enumerate(_processes_of(sample, root_pid)):
            key = pid if pid is not None else ("?", i)
            row = rows_by_pid.get(key)
            if row is None:
                command = child.get("command") if child else (
                    shlex.join(str(a) for a in root_cmd) if isinstance(root_cmd, list) else root_cmd)
                row = rows_by_pid[key] = {
                    "pid": pid, "ppid": m.get("ppid", child.get("ppid") if child else None),
                    "command": command, "cpu_secs": 0.0, "peak_rss_kb": 0,
                    "disk_read_bytes": 0, "disk_write_bytes": 0, "exit_code": None}
            if child and child.get("command"):
                row["command"] = child["command"]  # the latest: a child seen before its exec changes
            if dt is not None:
                row["cpu_secs"] += _num(m.get("cpu_usage")) / 100.0 * dt
            row["peak_rss_kb"] = max(row["peak_rss_kb"], _num(m.get("mem_rss_kb")))
            for k in ("disk_read_bytes", "disk_write_bytes"):
                if _is_num(m.get(k)):
                    row[k] = m[k]
        prev_ts = ts
    return _sorted_rows(list(rows_by_pid.values())), True


def _sorted_rows(rows: list[dict]) -> list[dict]:
    return sorted(rows, key=lambda r: (-_num(r.get("cpu_secs")), -_num(r.get("peak_rss_kb"))))


# --------------------------------------------------------------------------
# SVG charts


def _nice_step(span: float, target: int) -> float:
    if span <= 0:
        return 1.0
    raw = span / max(1, target)
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag  # pragma: no cover


def _ticks(lo: float, hi: float, target: int = 5, integer: bool = False) -> list[float]:
    step = _nice_step(hi - lo, target)
    if integer:
        step = max(1.0, round(step))
    start = math.ceil(lo / step - 1e-9) * step
    out = []
    v = start
    while v <= hi + step * 1e-6:
        out.append(round(v, 10))
        v += step
    return out


def _tick_label(v: float) -> str:
    if abs(v - round(v)) < 1e-9:
        return f"{int(round(v)):,}"
    return f"{v:.2f}".rstrip("0").rstrip(".") if abs(v) < 10 else f"{v:.1f}".rstrip("0").rstrip(".")


def _reduce(xs: list[float], ys: list[float], limit: int = MAX_CHART_POINTS) -> tuple[list, list]:
    """At most about ``limit`` points; each bucket keeps its lowest and highest point so
    peaks survive."""
    n = len(xs)
    if n <= limit:
        return xs, ys
    buckets = limit // 2
    out_x, out_y = [], []
    for b in range(buckets):
        lo, hi = b * n // buckets, (b + 1) * n // buckets
        if lo >= hi:
            continue
        seg = range(lo, hi)
        i_min = min(seg, key=lambda i: ys[i])
        i_max = max(seg, key=lambda i: ys[i])
        for i in sorted({i_min, i_max}):
            out_x.append(xs[i])
            out_y.append(ys[i])
    return out_x, out_y


@dataclass
class _Line:
    label: str
    ys: list
    color: str
    fill: bool = False
    dashed: bool = False
    step: bool = False
    start: int = 0  # points before this index are not drawn


def _line_chart(name: str, t: list[float], lines: list[_Line], *, y_unit: str, scale: float = 1.0,
                y_min_max: float = 0.0, integer: bool = False, width: int = 560, height: int = 210) -> str:
    """One SVG line chart; x in seconds since the start; ys divided by ``scale``."""
    ml, mr, mt, mb = 58, 14, 12, 34
    pw, ph = width - ml - mr, height - mt - mb
    x_hi = max(t[-1] if t else 0.0, 1e-3)
    y_top = max([y_min_max] + [max(line.ys[line.start:]) / scale for line in lines if line.ys[line.start:]])
    y_top = y_top * 1.04 if y_top > 0 else 1.0
    step = _nice_step(y_top, 5)
    if integer:
        step = max(1.0, round(step))
    y_hi = math.ceil(y_top / step - 1e-9) * step  # the axis ends on a labelled tick
    yt = _ticks(0.0, y_hi, 5, integer)
    xt = _ticks(0.0, x_hi, 6)

    def X(x: float) -> float:
        return ml + pw * x / x_hi

    def Y(y: float) -> float:
        return mt + ph - ph * y / y_hi

    # presentation attributes as well as the stylesheet: a notebook that strips <style> from
    # untrusted output still shows the charts
    parts = [f'<svg class="chart" data-chart="{_esc(name)}" viewBox="0 0 {width} {height}" width="100%" '
             f'preserveAspectRatio="xMidYMid meet" role="img" xmlns="http://www.w3.org/2000/svg" '
             f'font-family="{_SVG_FONT}">']
    parts.append(f"<title>{_esc(name)} ({_esc(y_unit)}) over seconds since the start</title>")
    for v in yt:
        y = Y(v)
        parts.append(f'<line class="grid" stroke="#e2e8f0" x1="{ml}" x2="{ml + pw}" y1="{y:.1f}" y2="{y:.1f}"/>')
        parts.append(f'<text class="tick" fill="#64748b" font-size="11" x="{ml - 6}" y="{y + 4:.1f}" text-anchor="end">{_tick_label(v)}</text>')
    for v in xt:
        x = X(v)
        parts.append(f'<line class="xtick" stroke="#94a3b8" x1="{x:.1f}" x2="{x:.1f}" y1="{mt + ph}" y2="{mt + ph + 4}"/>')
        parts.append(f'<text class="tick" fill="#64748b" font-size="11" x="{x:.1f}" y="{mt + ph + 16}" text-anchor="middle">{_tick_label(v)}</text>')
    parts.append(f'<line class="axis" stroke="#94a3b8" x1="{ml}" x2="{ml + pw}" y1="{mt + ph}" y2="{mt + ph}"/>')
    parts.append(f'<text class="axis-label" fill="#475569" font-size="11" x="{ml + pw}" y="{height - 3}" text-anchor="end">'
                 f"time since start (s)</text>")
    parts.append(f'<text class="axis-label" fill="#475569" font-size="11" transform="translate(13 {mt + ph / 2:.0f}) rotate(-90)" '
                 f'text-anchor="middle">{_esc(y_unit)}</text>')
    # dashed (secondary) lines first, so the main series is drawn on top of them
    for line in sorted(lines, key=lambda ln: not ln.dashed):
        xs, ys = _reduce(t[line.start:], [y / scale for y in line.ys[line.start:]])
        if not xs:
            continue
        pts = []
        for i, (x, y) in enumerate(zip(xs, ys)):
            if line.step and i:
                pts.append(f"{X(x):.1f},{Y(ys[i - 1]):.1f}")
            pts.append(f"{X(x):.1f},{Y(y):.1f}")
        if len(pts) == 1:
            parts.append(f'<circle class="series" cx="{X(xs[0]):.1f}" cy="{Y(ys[0]):.1f}" r="3" '
                         f'fill="{line.color}"><title>{_esc(line.label)}</title></circle>')
            continue
        d = "M" + " L".join(pts)
        if line.fill:
            parts.append(f'<path class="area" opacity="0.12" d="{d} L{X(xs[-1]):.1f},{Y(0):.1f} L{X(xs[0]):.1f},{Y(0):.1f} Z" '
                         f'fill="{line.color}"/>')
        dash = ' stroke-dasharray="5 3"' if line.dashed else ""
        parts.append(f'<path class="series" fill="none" stroke-width="2" stroke-linejoin="round" d="{d}" stroke="{line.color}"{dash}>'
                     f"<title>{_esc(line.label)}: peak {_tick_label(max(ys))} {_esc(y_unit)}</title></path>")
    parts.append("</svg>")
    return "".join(parts)


def _legend(lines: list[_Line]) -> str:
    items = []
    for line in lines:
        kind = "dashed" if line.dashed else "solid"
        items.append(f'<span class="key" style="margin-right:14px"><i style="display:inline-block;width:18px;'
                     f'border-top:3px {kind} {line.color};vertical-align:middle;margin-right:5px"></i>'
                     f"{_esc(line.label)}</span>")
    return '<div class="legend">' + "".join(items) + "</div>"


def _chart_card(title: str, note: str, chart: str, lines: list[_Line]) -> str:
    note_html = f'<span class="note">{_esc(note)}</span>' if note else ""
    return (f'<figure class="card chart-card"><figcaption><b>{_esc(title)}</b>{note_html}</figcaption>'
            f"{_legend(lines)}{chart}</figure>")


def _bytes_card(title: str, note: str, name: str, t: list[float], lines: list[_Line]) -> str:
    top = max(max(line.ys, default=0) for line in lines)
    if top <= 0:
        totals = ", ".join(f"0 B {line.label}" for line in lines)
        return (f'<figure class="card chart-card"><figcaption><b>{_esc(title)}</b><span class="note">'
                f'{_esc(note)}</span></figcaption><p class="empty flat" data-chart="{_esc(name)}">'
                f"Nothing to chart: {_esc(totals)} during the run.</p></figure>")
    unit, scale = _byte_unit(top)
    return _chart_card(title, note, _line_chart(name, t, lines, y_unit=unit, scale=scale), lines)


def _charts(s: _Series, summary_card: str = "") -> str:
    if not s.t:
        return '<p class="empty">No samples were recorded, so there is nothing to chart.</p>'
    cards = []
    cpu = [_Line("whole tree", s.cpu, COLORS["blue"], fill=True, start=s.cpu_from)]
    if s.had_children:
        cpu.append(_Line("monitored process alone", s.cpu_root, COLORS["orange"], dashed=True, start=s.cpu_from))
    cards.append(_chart_card("CPU", "100 % = one core busy",
                             _line_chart("cpu", s.t, cpu, y_unit="CPU %", y_min_max=100.0), cpu))
    unit, scale = _mem_unit(max(s.rss_kb + [0]))
    mem = [_Line("whole tree", s.rss_kb, COLORS["purple"], fill=True)]
    if s.had_children:
        mem.append(_Line("monitored process alone", s.rss_root_kb, COLORS["orange"], dashed=True))
    cards.append(_chart_card("Memory (RSS)", "resident set size",
                             _line_chart("memory", s.t, mem, y_unit=unit, scale=scale), mem))
    disk = [_Line("written", s.disk_write, COLORS["red"]), _Line("read", s.disk_read, COLORS["green"])]
    cards.append(_bytes_card("Disk I/O", "cumulative, block layer", "disk", s.t, disk))
    net = [_Line("received", s.net_rx, COLORS["teal"]), _Line("sent", s.net_tx, COLORS["orange"])]
    cards.append(_bytes_card("Network I/O", "cumulative, whole network namespace (lo excluded)", "network",
                             s.t, net))
    procs = [_Line("processes", s.procs, COLORS["blue"], step=True),
             _Line("threads", s.threads, COLORS["gray"], dashed=True, step=True)]
    cards.append(_chart_card("Processes and threads", "live in the tree",
                             _line_chart("processes", s.t, procs, y_unit="count", integer=True), procs))
    return '<div class="charts">' + "".join(cards) + summary_card + "</div>"


# --------------------------------------------------------------------------
# flame graph


def parse_folded(folded: Any) -> dict[tuple[str, ...], float]:
    """Folded stacks -> ``{(root frame, ..., leaf frame): value}``.

    Accepts the text format of ``stackcollapse``/``offcputime -f`` (``"a;b;c 123"`` a
    line), an iterable of such lines, or a mapping ``{"a;b;c": 123}`` (keys may also be
    tuples of frames).  Lines that do not end in a number are skipped.
    """
    out: dict[tuple[str, ...], float] = {}
    if folded is None:
        return out
    if isinstance(folded, Mapping):
        items = [((tuple(k) if isinstance(k, (tuple, list)) else tuple(str(k).split(";"))), v)
                 for k, v in folded.items()]
    else:
        if isinstance(folded, bytes):
            folded = folded.decode("utf-8", errors="replace")
        lines = folded.splitlines() if isinstance(folded, str) else folded
        items = []
        for line in lines:
            line = line.strip()
            stack, _, value = line.rpartition(" ")
            if not stack:
                continue
            try:
                items.append((tuple(stack.split(";")), float(value)))
            except ValueError:
                continue
    for frames, value in items:
        if _is_num(value) and value > 0 and frames:
            frames = tuple(f if f else "[unknown]" for f in frames)
            out[frames] = out.get(frames, 0.0) + float(value)
    return out


def _fmt_time(value: float, unit: str) -> str:
    secs = value * {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}.get(unit, 1.0)
    if unit not in ("ns", "us", "ms", "s"):
        return f"{value:,.0f} {unit}"
    if secs >= 1:
        return f"{secs:.2f} s"
    if secs >= 1e-3:
        return f"{secs * 1e3:.1f} ms"
    return f"{secs * 1e6:.0f} µs"


def _flame_color(name: str) -> str:
    # off-CPU flame graphs are blue by convention; the hue is stable for a name
    h = zlib.crc32(name.encode("utf-8", errors="replace"))
    return f"hsl({200 + h % 40},{55 + (h >> 8) % 25}%,{58 + (h >> 16) % 16}%)"


def flame_graph_svg(folded: Any, *, title: str = "Off-CPU time", unit: str = "ns", width: int = 1000,
                    frame_height: int = 17, min_px: float = 0.3) -> str:
    """An SVG flame graph of folded stacks (see :func:`parse_folded`).

    ``unit`` is the unit of the values (``ns``, ``us``, ``ms``, ``s``, or a count such as
    ``samples``).  The root is at the bottom; a frame's width is its share of the total;
    hovering shows the frame, its time and share.  Frames narrower than ``min_px`` are
    merged into their parent's width (not drawn), never dropped from the totals.
    """
    stacks = parse_folded(folded)
    total = sum(stacks.values())
    root: dict = {"name": "all", "value": 0.0, "kids": {}}
    for frames, value in stacks.items():
        root["value"] += value
        node = root
        for frame in frames:
            node = node["kids"].setdefault(frame, {"name": frame, "value": 0.0, "kids": {}})
            node["value"] += value

    def depth(node: dict) -> int:
        return 1 + max((depth(k) for k in node["kids"].values()), default=0)

    levels = depth(root) if total > 0 else 1
    top = 24
    height = top + levels * frame_height + 6
    parts = [f'<svg class="flame" data-chart="flame" viewBox="0 0 {width} {height}" width="100%" '
             f'xmlns="http://www.w3.org/2000/svg" role="img" font-family="{_SVG_FONT}">',
             f'<text class="flame-title" fill="#334155" font-size="13" x="{width / 2:.0f}" y="15" text-anchor="middle">'
             f"{_esc(title)}: {_esc(_fmt_time(total, unit))} in {len(stacks):,} stacks</text>"]
    if total <= 0:
        parts.append(f'<text class="tick" fill="#64748b" font-size="11" x="{width / 2:.0f}" y="{top + 12}" text-anchor="middle">'
                     "no off-CPU stacks recorded</text></svg>")
        return "".join(parts)
    scale = (width - 2) / total
    char_px = 6.6

    def draw(node: dict, x: float, level: int) -> None:
        w = node["value"] * scale
        if w < min_px:
            return
        y = height - 6 - (level + 1) * frame_height
        name = node["name"]
        share = 100.0 * node["value"] / total
        label = f"{name} ({_fmt_time(node['value'], unit)}, {share:.1f} %)"
        fill = "#94a3b8" if level == 0 else _flame_color(name)
        parts.append(f'<g><title>{_esc(label)}</title><rect x="{x:.2f}" y="{y}" width="{w:.2f}" '
                     f'height="{frame_height - 1}" fill="{fill}" rx="2"/>')
        max_chars = int((w - 6) / char_px)
        if max_chars >= 3:
            text = name if len(name) <= max_chars else name[: max_chars - 1] + "…"
            parts.append(f'<text class="frame" fill="#0f172a" font-size="11" x="{x + 3:.2f}" y="{y + frame_height - 5}">{_esc(text)}</text>')
        parts.append("</g>")
        kx = x
        for kid in sorted(node["kids"].values(), key=lambda k: k["name"]):
            draw(kid, kx, level + 1)
            kx += kid["value"] * scale

    draw(root, 1.0, 0)
    parts.append("</svg>")
    return "".join(parts)


# --------------------------------------------------------------------------
# tables


def _summary_rows(summary: Mapping) -> list[tuple[str, str]]:
    g = summary.get
    rows = [
        ("Wall time", fmt_secs(g("total_time_secs"))),
        ("CPU time", fmt_secs(g("total_cpu_time_secs"))),
        ("Average CPU", f"{_num(g('avg_cpu_usage')):.1f} %"),
        ("Peak RSS of one process", fmt_mem_kb(g("peak_process_rss_kb"))),
        ("Peak RSS of the tree", fmt_mem_kb(g("peak_mem_rss_kb"))),
        ("Processes (at once / seen)", f"{fmt_count(g('max_processes'))} / {fmt_count(g('processes_seen'))}"),
        ("Most threads", fmt_count(g("max_threads"))),
        ("Disk read / written", f"{fmt_bytes(g('total_disk_read_bytes'))} / {fmt_bytes(g('total_disk_write_bytes'))}"),
        ("Read / write calls (bytes)",
         f"{fmt_bytes(g('total_syscall_read_bytes'))} / {fmt_bytes(g('total_syscall_write_bytes'))}"),
        ("Network received / sent (namespace)",
         f"{fmt_bytes(g('total_sys_net_rx_bytes'))} / {fmt_bytes(g('total_sys_net_tx_bytes'))}"),
        ("Samples", fmt_count(g("sample_count"))),
    ]
    if "total_syscalls" in summary:
        rows.append(("System calls", fmt_count(g("total_syscalls"))))
    if _is_num(g("total_offcpu_time_secs")):
        rows.append(("Off-CPU time", fmt_secs(g("total_offcpu_time_secs"))))
    if g("estimated"):
        rows.append(("Estimated from samples", ", ".join(map(str, g("estimated")))))
    if g("skipped_records"):
        rows.append(("Records skipped (not valid)", fmt_count(g("skipped_records"))))
    return rows


def _summary_table_html(summary: Mapping) -> str:
    body = "".join(f"<tr><th>{_esc(k)}</th><td>{_esc(v)}</td></tr>" for k, v in _summary_rows(summary))
    return f'<table class="summary">{body}</table>'


def _tiles(summary: Mapping) -> str:
    g = summary.get
    tiles = [("Wall time", fmt_secs(g("total_time_secs"))), ("CPU time", fmt_secs(g("total_cpu_time_secs"))),
             ("Peak RSS", fmt_mem_kb(g("peak_process_rss_kb"))),
             ("Processes", fmt_count(g("processes_seen", g("max_processes")))),
             ("Disk written", fmt_bytes(g("total_disk_write_bytes")))]
    if "total_syscalls" in summary:
        tiles.append(("System calls", fmt_count(g("total_syscalls"))))
    return '<div class="tiles">' + "".join(
        f'<div class="tile"><span>{_esc(k)}</span><b>{_esc(v)}</b></div>' for k, v in tiles) + "</div>"


def _process_table_html(rows: list[dict], derived: bool) -> str:
    if not rows:
        return '<p class="empty">No process was seen.</p>'
    shown = rows[:MAX_PROCESS_ROWS]
    has_ppid = any(r.get("ppid") is not None for r in rows)
    has_exit = any(r.get("exit_code") is not None for r in rows)
    cpu_head = "CPU (estimated)" if derived else "CPU"
    head = ["PID"] + (["PPID"] if has_ppid else []) + ["Command", cpu_head, "Peak RSS", "Disk read",
                                                          "Disk written"] + (["Exit"] if has_exit else [])
    out = ['<table class="procs"><thead><tr>' + "".join(f"<th>{_esc(h)}</th>" for h in head) + "</tr></thead><tbody>"]
    for r in shown:
        cells = [fmt_count(r.get("pid")) if _is_num(r.get("pid")) else _esc(str(r.get("pid") or "-"))]
        if has_ppid:
            cells.append(fmt_count(r.get("ppid")))
        command = str(r.get("command") or "?")
        cells.append(f'<span class="cmd" title="{_esc(command)}">{_esc(command)}</span>')
        cells += [fmt_secs(r.get("cpu_secs")), fmt_mem_kb(r.get("peak_rss_kb")),
                  fmt_bytes(r.get("disk_read_bytes")), fmt_bytes(r.get("disk_write_bytes"))]
        if has_exit:
            cells.append(_esc(str(r["exit_code"])) if r.get("exit_code") is not None else "-")
        out.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    out.append("</tbody></table>")
    if len(rows) > len(shown):
        out.append(f'<p class="note">{len(rows) - len(shown):,} more processes are not shown '
                   f"(the lightest by CPU).</p>")
    if derived:
        out.append('<p class="note">Derived from the samples: CPU is estimated from the sampled '
                   "CPU usage, peaks are the largest sampled RSS, and a process that started and "
                   "ended between two samples is not listed.</p>")
    return "".join(out)


def _ebpf_parts(samples: Sequence[dict]) -> tuple[dict | None, str | None]:
    """(syscalls dict of the last sample that has one, eBPF error if any)."""
    syscalls, error = None, None
    for sample in reversed(samples):
        if not isinstance(sample, dict):
            continue
        ebpf = _whole(sample).get("ebpf")
        if isinstance(ebpf, dict):
            if syscalls is None and isinstance(ebpf.get("syscalls"), dict):
                syscalls = ebpf["syscalls"]
            if error is None and ebpf.get("error"):
                error = str(ebpf["error"])
        if syscalls is not None:
            break
    return syscalls, error


def _bars(items: list[tuple[str, float]], color: str, unit: str = "") -> str:
    if not items:
        return ""
    top = max(v for _, v in items) or 1.0
    rows = []
    for name, value in items:
        pct = 100.0 * value / top
        rows.append(f'<div class="bar"><span class="bar-name">{_esc(name)}</span>'
                    f'<span class="bar-track"><span class="bar-fill" style="width:{pct:.1f}%;background:{color}">'
                    f'</span></span><span class="bar-value">{fmt_count(value)}{_esc(unit)}</span></div>')
    return '<div class="bars">' + "".join(rows) + "</div>"


def _syscalls_html(samples: Sequence[dict], summary: Mapping) -> str:
    syscalls, error = _ebpf_parts(samples)
    if syscalls is None and "total_syscalls" not in summary:
        if error:
            return (f'<section class="card"><h2>System calls</h2><p class="note">eBPF was requested '
                    f"but unavailable: {_esc(error)}</p></section>")
        return ""
    total = summary.get("total_syscalls", (syscalls or {}).get("total"))
    by_cat = summary.get("syscalls_by_category") or (syscalls or {}).get("by_category") or {}
    top = [(str(t.get("name")), _num(t.get("count"))) for t in (syscalls or {}).get("top_syscalls") or []
           if isinstance(t, dict)]
    cats = sorted(((str(k), _num(v)) for k, v in by_cat.items() if _num(v) > 0), key=lambda kv: -kv[1])
    parts = [f'<section class="card"><h2>System calls <span class="note">{fmt_count(total)} in all '
             "(eBPF, exact)</span></h2><div class=\"two\">"]
    parts.append('<div><h3>Top system calls <span class="note">as of the last sample</span></h3>'
                 + (_bars(top, COLORS["blue"]) or '<p class="empty">none recorded</p>') + "</div>")
    parts.append('<div><h3>By category</h3>'
                 + (_bars(cats, COLORS["purple"]) or '<p class="empty">none recorded</p>') + "</div>")
    parts.append("</div></section>")
    return "".join(parts)


def _offcpu_html(summary: Mapping, folded: Any, unit: str) -> str:
    stacks = parse_folded(folded)
    total = summary.get("total_offcpu_time_secs")
    if not stacks and not _is_num(total):
        return ""
    parts = ['<section class="card"><h2>Off-CPU time']
    if _is_num(total):
        parts.append(f' <span class="note">{fmt_secs(total)} in all</span>')
    parts.append("</h2>")
    if stacks:
        parts.append('<p class="note">Where threads waited, by stack: the root is at the bottom, '
                     "a frame's width is its share of the waiting time (hover for figures).</p>")
        parts.append(flame_graph_svg(stacks, unit=unit))
    else:
        parts.append('<p class="note">No stacks were recorded for this run, so no flame graph.</p>')
    parts.append("</section>")
    return "".join(parts)


# --------------------------------------------------------------------------
# page


_CSS = """
.denet-report{--fg:#0f172a;--muted:#64748b;--line:#e2e8f0;--bg:#f8fafc;--card:#fff;
 font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:var(--fg);
 background:var(--bg);padding:18px 20px;border-radius:10px;max-width:1240px;box-sizing:border-box}
.denet-report *{box-sizing:border-box}
.denet-report h1{font-size:20px;margin:0 0 2px}
.denet-report h2{font-size:16px;margin:0 0 10px}
.denet-report h3{font-size:13px;margin:0 0 8px;color:var(--muted);font-weight:600}
.denet-report .meta{color:var(--muted);margin:0 0 14px;display:flex;flex-wrap:wrap;gap:4px 14px}
.denet-report .meta code{background:#eef2f7;padding:1px 6px;border-radius:4px;min-width:0;max-width:100%;overflow:hidden;
 text-overflow:ellipsis;white-space:nowrap;font-size:12px}
.denet-report .note{color:var(--muted);font-weight:400;font-size:12px;margin-left:6px}
.denet-report p.note{margin:8px 0 0}
.denet-report .card{background:var(--card);border:1px solid var(--line);border-radius:10px;
 padding:14px 16px;margin:0 0 14px}
.denet-report .tiles{display:grid;grid-template-columns:repeat(auto-fit,minmax(140px,1fr));gap:10px;margin:0 0 14px}
.denet-report .tile{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:10px 14px}
.denet-report .tile span{display:block;color:var(--muted);font-size:12px}
.denet-report .tile b{font-size:20px;font-weight:650}
.denet-report .charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(430px,1fr));gap:14px;margin:0 0 14px}
.denet-report .chart-card{margin:0}
.denet-report figcaption{margin:0 0 2px}
.denet-report .legend{font-size:12px;color:var(--muted);margin:0 0 4px}
.denet-report .key{margin-right:14px;white-space:nowrap}
.denet-report svg{display:block;width:100%;height:auto}
.denet-report svg .grid{stroke:#e2e8f0;stroke-width:1}
.denet-report svg .axis{stroke:#94a3b8;stroke-width:1}
.denet-report svg .xtick{stroke:#94a3b8}
.denet-report svg .tick{font-size:11px;fill:#64748b}
.denet-report svg .axis-label{font-size:11px;fill:#475569}
.denet-report svg .series{fill:none;stroke-width:2;stroke-linejoin:round;stroke-linecap:round}
.denet-report svg circle.series{stroke:none}
.denet-report svg .area{opacity:.12;stroke:none}
.denet-report svg .frame{font-size:11px;fill:#0f172a;pointer-events:none}
.denet-report svg .flame-title{font-size:13px;fill:#334155}
.denet-report svg.flame rect:hover{stroke:#0f172a;stroke-width:1}
.denet-report table{border-collapse:collapse;width:100%;font-size:13px}
.denet-report th,.denet-report td{padding:5px 10px;border-bottom:1px solid var(--line);text-align:left}
.denet-report table.summary th{font-weight:500;color:var(--muted);width:48%}
.denet-report table.summary th,.denet-report table.summary td{padding:4px 8px}
.denet-report table.procs td:not(:nth-child(-n+3)),.denet-report table.procs th:not(:nth-child(-n+3)){text-align:right}
.denet-report table.procs thead th{color:var(--muted);font-weight:600;font-size:12px}
.denet-report .cmd{font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-size:12px;display:inline-block;
 max-width:520px;overflow:hidden;text-overflow:ellipsis;white-space:nowrap;vertical-align:bottom}
.denet-report .two{display:grid;grid-template-columns:repeat(auto-fit,minmax(320px,1fr));gap:18px}
.denet-report .bar{display:grid;grid-template-columns:130px 1fr 80px;gap:8px;align-items:center;font-size:12px;margin:3px 0}
.denet-report .bar-name{font-family:ui-monospace,"DejaVu Sans Mono",monospace;overflow:hidden;text-overflow:ellipsis}
.denet-report .bar-track{background:#f1f5f9;border-radius:3px;height:12px;overflow:hidden}
.denet-report .bar-fill{display:block;height:100%;border-radius:3px}
.denet-report .bar-value{text-align:right;color:var(--muted)}
.denet-report .empty{color:var(--muted);font-style:italic}
.denet-report .flat{margin:40px 0;text-align:center}
"""


def _t0(metadata: Mapping | None, t0_ms: float | None) -> float | None:
    if t0_ms is not None:
        return float(t0_ms)
    value = (metadata or {}).get("t0_ms")
    return float(value) if _is_num(value) else None


def _body(samples: Sequence[dict], summary: Mapping | None, metadata: Mapping | None, title: str | None,
          offcpu_folded: Any, offcpu_unit: str, t0_ms: float | None, heading: str) -> str:
    samples = [s for s in (samples or []) if isinstance(s, dict)]
    if summary is None:
        from ._summary import summarize_samples  # noqa: PLC0415

        summary = summarize_samples(samples)
    metadata = metadata or {}
    root_pid = metadata.get("pid", "root")
    series = _series(samples, _t0(metadata, t0_ms), root_pid)
    rows, derived = process_rows(samples, summary, metadata)
    cmd = metadata.get("cmd")
    cmd_text = shlex.join(str(a) for a in cmd) if isinstance(cmd, list) else (str(cmd) if cmd else None)
    meta = []
    if cmd_text:
        short = cmd_text if len(cmd_text) <= 200 else cmd_text[:199] + "…"
        meta.append(f'<code title="{_esc(cmd_text)}">{_esc(short)}</code>')
    if metadata.get("pid") is not None:
        meta.append(f"pid {_esc(str(metadata['pid']))}")
    start = _t0(metadata, t0_ms) or (_sample_ts(samples[0]) if samples else None)
    if start:
        meta.append("started " + _esc(time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(start / 1000))))
    parts = [f"<{heading}>{_esc(title or 'denet report')}</{heading}>"]
    parts.append('<p class="meta">' + "".join(m if m.startswith("<code") else f"<span>{m}</span>" for m in meta)
                 + "</p>" if meta else "")
    parts.append(_tiles(summary))
    summary_card = f'<section class="card chart-card"><h2>Summary</h2>{_summary_table_html(summary)}</section>'
    if series.t:
        parts.append(_charts(series, summary_card))
    else:
        parts.append(_charts(series) + summary_card)
    parts.append(f'<section class="card"><h2>Processes <span class="note">{len(rows):,} seen, heaviest CPU first'
                 f"</span></h2>{_process_table_html(rows, derived)}</section>")
    parts.append(_syscalls_html(samples, summary))
    parts.append(_offcpu_html(summary, offcpu_folded, offcpu_unit))
    parts.append('<p class="note">denet: time is in seconds since the start of the run; memory in MiB '
                 "(GiB for large values); disk and network figures are cumulative.</p>")
    return "".join(parts)


def render_html(samples: Sequence[dict], summary: Mapping | None = None, metadata: Mapping | None = None,
                *, title: str | None = None, offcpu_folded: Any = None, offcpu_unit: str = "ns",
                t0_ms: float | None = None) -> str:
    """A whole self-contained HTML page for a run.

    Args:
        samples: the samples (``get_samples()``, or those of a recorded file).
        summary: the run's summary; computed from the samples when None.
        metadata: ``get_metadata()`` (command, pid, ``t0_ms``), optional.
        title: page heading.
        offcpu_folded: folded off-CPU stacks for the flame graph (see :func:`parse_folded`).
        offcpu_unit: the unit of the folded values (``ns`` by default).
        t0_ms: where the time axis starts (ms since the epoch); default the metadata's
            ``t0_ms`` or the first sample.
    """
    body = _body(samples, summary, metadata, title, offcpu_folded, offcpu_unit, t0_ms, "h1")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
            f"<title>{_esc(title or 'denet report')}</title><style>body{{margin:0;background:#f8fafc}}"
            f"{_CSS}</style></head><body><main class=\"denet-report\">{body}</main></body></html>\n")


def render_fragment(samples: Sequence[dict], summary: Mapping | None = None, metadata: Mapping | None = None,
                    *, title: str | None = None, offcpu_folded: Any = None, offcpu_unit: str = "ns",
                    t0_ms: float | None = None) -> str:
    """The report as one ``<div>`` with its own scoped style, for notebooks."""
    body = _body(samples, summary, metadata, title, offcpu_folded, offcpu_unit, t0_ms, "h2")
    return f'<div class="denet-report"><style>{_CSS}</style>{body}</div>'


class SummaryTable(dict):
    """A summary ``dict`` that Jupyter shows as a table: ``denet.SummaryTable(mon.get_summary())``."""

    def _repr_html_(self) -> str:
        return (f'<div class="denet-report"><style>{_CSS}</style>{_tiles(self)}'
                f"{_summary_table_html(self)}</div>")


def _monitor_folded(monitor: Any) -> Any:
    """The monitor's folded off-CPU stacks when this build records them, else None."""
    getter = getattr(monitor, "offcpu_folded", None)
    if not callable(getter):
        return None
    try:
        return getter()
    except Exception:  # noqa: BLE001 - a report is still worth showing without stacks
        return None


def monitor_html(monitor: Any, *, title: str | None = None, full_page: bool = False) -> str:
    """Report of a :class:`denet.ProcessMonitor` (what ``_repr_html_`` shows)."""
    samples = monitor.get_samples()
    summary = monitor.get_summary()
    metadata = monitor.get_metadata()
    render = render_html if full_page else render_fragment
    return render(samples, summary, metadata, title=title, offcpu_folded=_monitor_folded(monitor))

