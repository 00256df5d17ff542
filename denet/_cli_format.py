"""What the ``denet`` command prints for people: byte and time formatting, the live
status line, the summary table.

(``denet._formats`` is about file formats; this module is about text on a terminal.)
Every function here accepts any value where a number is expected and never raises
for it: a summary read from a damaged file must still print.
"""

from __future__ import annotations

import math
import os
import sys
import time
from typing import Any

from . import _formats

#: Redraw the status line at most this often.
STATUS_EVERY_SECS = 0.5


def _finite(value: Any) -> float | None:
    """``value`` as a float when it is (or spells) a finite number, else ``None``."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def fmt_bytes(n: Any) -> str:
    """``1536`` -> ``"1.5 KiB"``; ``"-"`` for what is not a finite number."""
    value = _finite(n)
    if value is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"  # pragma: no cover


def fmt_kib(n: Any) -> str:
    """KiB -> text: ``2048`` -> ``"2.0 MiB"``."""
    value = _finite(n)
    return "-" if value is None else fmt_bytes(value * 1024)


def fmt_duration(secs: Any) -> str:
    """``75.5`` -> ``"1m15.5s"``; ``"-"`` for what is not a finite number."""
    secs = _finite(secs)
    if secs is None:
        return "-"
    if secs < 60:
        return f"{secs:.1f}s"
    minutes, s = divmod(secs, 60)
    if minutes < 60:
        return f"{int(minutes)}m{s:04.1f}s"
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours}h{minutes:02d}m{int(s):02d}s"


def whole_tree(sample: Any) -> dict:
    """Aggregated metrics of a tree sample (flat samples as they are)."""
    if not isinstance(sample, dict):
        return {}
    if _formats.sample_kind(sample) == "tree":
        agg = sample.get("aggregated")
        if isinstance(agg, dict):
            return agg
        parent = sample.get("parent")
        return parent if isinstance(parent, dict) else {}
    return sample


def has_memory_reading(sample: Any) -> bool:
    """Whether a sample holds a real memory reading (RSS above 0).

    A process read before it has memory of its own, or after it exited but before it
    was reaped (a zombie), reads 0 KiB: a status line would show ``mem 0 B``.
    """
    rss = _finite(whole_tree(sample).get("mem_rss_kb"))
    return rss is not None and rss > 0


def status_line(sample: dict | None, elapsed: float, syscall_rate: float | None = None) -> str:
    """One-line live status for a sample."""
    view = whole_tree(sample)
    if not view:
        return f"[{fmt_duration(elapsed)}] waiting for the first sample..."
    cpu = _finite(view.get("cpu_usage")) or 0.0
    parts = [
        f"[{fmt_duration(elapsed)}]",
        f"procs {_int_text(view.get('process_count', 1))}",
        f"CPU {cpu:.1f}%",
        f"mem {fmt_kib(view.get('mem_rss_kb'))}",
        f"threads {_int_text(view.get('thread_count'))}",
        f"disk r {fmt_bytes(view.get('disk_read_bytes', 0))} w {fmt_bytes(view.get('disk_write_bytes', 0))}",
    ]
    gpu = gpu_status(view)
    if gpu:
        parts.append(gpu)
    if syscall_rate is not None:
        parts.append(f"syscalls {syscall_rate:,.0f}/s")
    return "  ".join(parts)


def gpu_status(view: dict) -> str:
    """``"GPU 45% 1.2 GiB"`` (the tree's SM utilization and GPU memory) when a process of
    the tree uses a GPU, else ``""``."""
    gpu = view.get("gpu") if isinstance(view, dict) else None
    if not isinstance(gpu, dict) or not gpu.get("has_process_data"):
        return ""
    util = _finite(view.get("gpu_sm_utilization"))
    mem = _finite(view.get("gpu_memory_bytes"))
    return f"GPU {'-' if util is None else f'{util:.0f}%'} {fmt_bytes(mem)}"


def gpu_rows(gpu: Any) -> list[tuple[str, str]]:
    """Summary table rows for the summary's ``gpu`` object."""
    if not isinstance(gpu, dict):
        return []
    if gpu.get("enabled") is not True:
        error = gpu.get("error")
        return [("GPU", f"off: {error}" if error else "off")]
    gib = 1024 ** 3

    def gb(key):
        return _cell(gpu.get(key), lambda n: fmt_bytes(n * gib))

    def pct(key):
        return _cell(gpu.get(key), lambda n: f"{n:.0f} %")

    return [
        ("GPU devices", f"{_cell(gpu.get('device_count'), lambda n: f'{int(n)}')} "
                        f"({gb('total_memory_gb')} in all)"),
        ("GPU peak memory of the tree", gb("process_memory_usage_gb")),
        ("GPU peak memory used (all processes)", gb("peak_used_memory_gb")),
        ("GPU max utilization, device / one process",
         f"{pct('max_system_gpu_utilization')} / {pct('max_process_gpu_utilization')}"),
    ]


def _int_text(value: Any) -> str:
    number = _finite(value)
    return "-" if number is None else f"{int(number)}"


def _cell(value: Any, render) -> str:
    """``render(number)``, or the raw value marked as not a number."""
    number = _finite(value) if not isinstance(value, str) else None
    if number is not None:
        return render(number)
    if value is None:
        return "-"
    text = repr(value)
    return (text if len(text) <= 30 else text[:27] + "...") + " (not a number)"


def _frames_text(frames: Any, limit: int = 6) -> str:
    """``a < b < c``: the innermost frames of a stack, callers to the right."""
    if not isinstance(frames, list):
        return ""
    names = [str(f.get("symbol")) for f in frames if isinstance(f, dict) and f.get("symbol")]
    text = " < ".join(names[:limit])
    return text + (" < ..." if len(names) > limit else "")


def offcpu_rows(summary: dict, offcpu: dict | None) -> list[tuple[str, str]]:
    """The off-CPU rows: total and verdict from the summary, the top blocking threads
    and the heaviest stack from the last sample's ``ebpf.offcpu``."""
    rows: list[tuple[str, str]] = []
    total = _finite(summary.get("total_offcpu_time_secs"))
    if total is None:
        return rows
    rows.append(("Off-CPU time", f"{total:.2f} s (all threads together)"))
    analysis = summary.get("offcpu_analysis")
    if isinstance(analysis, dict):
        shares = []
        for label, key in (("I/O", "io_wait_percentage"), ("lock", "lock_contention_percentage"),
                           ("sleep", "sleep_percentage"), ("CPU wait", "cpu_wait_percentage"),
                           ("other", "other_wait_percentage")):
            pct = _finite(analysis.get(key))
            if pct is not None:
                shares.append(f"{label} {pct:.1f} %")
        rows.append(("  verdict", f"{analysis.get('bottleneck_type', '-')} ({', '.join(shares)})"))
        hints = analysis.get("optimization_hints")
        if isinstance(hints, list) and hints:
            rows.append(("  hint", str(hints[0])))
    if not isinstance(offcpu, dict):
        return rows
    threads = offcpu.get("top_blocking_threads")
    if isinstance(threads, list) and threads:
        for i, t in enumerate(threads[:3]):
            if not isinstance(t, dict):
                continue
            ms = _finite(t.get("time_ms")) or 0.0
            pct = _finite(t.get("percentage")) or 0.0
            rows.append(("Top blocking threads" if i == 0 else "",
                         f"{t.get('process_name', '?')} {t.get('pid')}:{t.get('tid')} "
                         f"({t.get('thread_name', '?')}): {ms / 1000:.2f} s, {pct:.1f} %"))
    traces = offcpu.get("stack_traces")
    if isinstance(traces, list) and traces and isinstance(traces[0], dict):
        top = traces[0]
        event = top.get("event") if isinstance(top.get("event"), dict) else {}
        secs = (_finite(top.get("total_time_ns")) or 0.0) / 1e9
        what = top.get("syscall") or "no system call"
        user = _frames_text(top.get("user_stack")) or top.get("user_stack_error") or "-"
        kernel = _frames_text(top.get("kernel_stack")) or top.get("kernel_stack_error") or "-"
        rows.append(("Heaviest stack",
                     f"{secs:.2f} s, {top.get('wait', '?')} in {what}, "
                     f"{top.get('process_name', '?')} {event.get('pid', '?')}:{event.get('tid', '?')}"))
        rows.append(("  user", user))
        rows.append(("  kernel", kernel))
    return rows


def summary_table(summary: dict, title: str = "denet summary", extra: list[tuple[str, str]] | None = None,
                  offcpu: dict | None = None) -> str:
    """Human-readable summary table; ``offcpu``: the last sample's ``ebpf.offcpu``."""
    rows: list[tuple[str, str]] = list(extra or [])
    g = summary.get
    estimated = g("estimated") if isinstance(g("estimated"), list) else []
    # Two different peaks: the tree's is the sum over the processes alive at one
    # sample; the single-process one is the kernel's high-water mark (VmHWM), which
    # also sees spikes between samples, so it can be the larger of the two.
    one_process = ("Peak RSS of one process (largest sampled)" if "peak_process_rss_kb" in estimated
                   else "Peak RSS of one process (kernel high-water mark)")
    rows += [
        ("Wall time", _cell(g("total_time_secs", 0), fmt_duration)),
        ("Samples", _cell(g("sample_count", 0), lambda n: f"{int(n)}")),
        ("Max processes", _cell(g("max_processes", 0), lambda n: f"{int(n)}")),
        ("Max threads", _cell(g("max_threads", 0), lambda n: f"{int(n)}")),
        ("Avg CPU", _cell(g("avg_cpu_usage", 0), lambda n: f"{n:.1f} %")),
        ("CPU time", _cell(g("total_cpu_time_secs", 0), lambda n: f"{n:.2f} s")),
        ("Peak RSS of the tree (sum at one sample)", _cell(g("peak_mem_rss_kb", 0), fmt_kib)),
        (one_process, _cell(g("peak_process_rss_kb", 0), fmt_kib)),
        ("Disk read / write",
         f"{_cell(g('total_disk_read_bytes', 0), fmt_bytes)} / {_cell(g('total_disk_write_bytes', 0), fmt_bytes)}"),
        ("Read / write calls",
         f"{_cell(g('total_syscall_read_bytes', 0), fmt_bytes)} / "
         f"{_cell(g('total_syscall_write_bytes', 0), fmt_bytes)}"),
        ("Network rx / tx (namespace)",
         f"{_cell(g('total_sys_net_rx_bytes', 0), fmt_bytes)} / {_cell(g('total_sys_net_tx_bytes', 0), fmt_bytes)}"),
    ]
    if g("total_sock_rx_bytes") is not None or g("total_sock_tx_bytes") is not None:
        rows.append(("Sockets rx / tx (own, eBPF)",
                     f"{_cell(g('total_sock_rx_bytes'), fmt_bytes)} / {_cell(g('total_sock_tx_bytes'), fmt_bytes)}"))
        rows.append(("  not loopback",
                     f"{_cell(g('total_sock_rx_bytes_remote'), fmt_bytes)} / "
                     f"{_cell(g('total_sock_tx_bytes_remote'), fmt_bytes)}"))
    memchar = g("memory_characterization")
    if isinstance(memchar, dict) and memchar.get("verdict") not in (None, "insufficient-data"):
        ipc = _finite(memchar.get("mean_ipc"))
        rows.append(("Memory characterization",
                     str(memchar["verdict"]) + (f" (IPC {ipc:.2f})" if ipc is not None else "")))
    if "total_syscalls" in summary:
        rows.append(("Syscalls", _cell(g("total_syscalls"), lambda n: f"{int(n):,}")))
        by_cat = g("syscalls_by_category")
        if isinstance(by_cat, dict):
            for cat, count in sorted(by_cat.items(), key=lambda kv: -(_finite(kv[1]) or 0)):
                if count != 0:
                    rows.append((f"  {cat}", _cell(count, lambda n: f"{int(n):,}")))
    rows += gpu_rows(g("gpu"))
    rows += offcpu_rows(summary, offcpu)
    rows += heaviest_process_rows(g("processes"))
    if estimated:
        rows.append(("Estimated", ", ".join(str(x) for x in estimated)))
    if g("skipped_records"):
        rows.append(("Skipped records", _cell(g("skipped_records"), lambda n: f"{int(n)} (not valid denet records)")))
    width = max(len(k) for k, _ in rows)
    lines = [title, "-" * max(len(title), width + 20)]
    lines += [f"  {k.ljust(width)}  {v}" for k, v in rows]
    return "\n".join(lines) + "\n"


def heaviest_process_rows(processes: Any, n: int = 3) -> list[tuple[str, str]]:
    """The few processes that used the most CPU (the summary lists them heaviest first)."""
    if not isinstance(processes, list) or not processes:
        return []
    rows = [("Heaviest processes", f"{len(processes)} seen")]
    for p in processes[:n]:
        if not isinstance(p, dict):
            continue
        command = str(p.get("command") or "?")
        if len(command) > 40:
            command = command[:37] + "..."
        rows.append((f"  pid {p.get('pid')}",
                     f"{_cell(p.get('cpu_secs'), lambda x: f'{x:.2f} s')} CPU, "
                     f"peak {_cell(p.get('peak_rss_kb'), fmt_kib)}  {command}"))
    return rows


class StatusLine:
    """The live status line on stderr (the CLI enables it on a terminal only).

    Nothing is drawn before a sample with a real memory reading exists (see
    :func:`has_memory_reading`): the first line never says ``mem 0 B``.
    """

    def __init__(self, enabled: bool, ebpf: bool):
        self.enabled = enabled
        self.ebpf = ebpf
        self.last_draw = 0.0
        self.last_total: tuple[float, int] | None = None
        self.rate: float | None = None
        self.drawn = False
        self.have_reading = False

    def _syscall_rate(self, sample: dict | None, now: float) -> float | None:
        ebpf = whole_tree(sample).get("ebpf")
        if not isinstance(ebpf, dict):
            return None
        syscalls = ebpf.get("syscalls")
        if not isinstance(syscalls, dict):
            return None
        total = _finite(syscalls.get("total"))
        if total is None:
            return None
        total = int(total)
        if self.last_total is not None and now > self.last_total[0] and total >= self.last_total[1]:
            self.rate = (total - self.last_total[1]) / (now - self.last_total[0])
        elif self.rate is None:
            analysis = syscalls.get("analysis")
            if isinstance(analysis, dict) and _finite(analysis.get("syscall_rate_per_sec")) is not None:
                self.rate = float(analysis["syscall_rate_per_sec"])
        self.last_total = (now, total)
        return self.rate

    def update(self, sample: dict | None, elapsed: float, force: bool = False) -> None:
        if not self.enabled:
            return
        if not self.have_reading:
            if not has_memory_reading(sample):
                return
            self.have_reading = True
        now = time.monotonic()
        if not force and now - self.last_draw < STATUS_EVERY_SECS:
            return
        self.last_draw = now
        rate = self._syscall_rate(sample, now) if self.ebpf else None
        line = status_line(sample, elapsed, rate)
        try:
            cols = os.get_terminal_size(sys.stderr.fileno()).columns
        except (OSError, ValueError, AttributeError):
            cols = 0
        if cols >= 20:  # a terminal that reports no size (0) gets the whole line
            line = line[: cols - 1]
        try:
            sys.stderr.write("\r" + line + "\x1b[K")
            sys.stderr.flush()
            self.drawn = True
        except (OSError, ValueError):
            self.enabled = False

    def clear(self) -> None:
        if self.drawn:
            try:
                sys.stderr.write("\r\x1b[K")
                sys.stderr.flush()
            except (OSError, ValueError):
                pass
            self.drawn = False
