"""The ``denet`` command line.

::

    denet [options] run -- CMD [ARG...]   run CMD and monitor its process tree
    denet [options] attach PID            monitor a running process until it exits
    denet [options] stats FILE            summarise a file recorded with --out
    denet report FILE [-o OUT.html]       HTML report of a file recorded with --out

Options (before or after the sub-command name): ``--json``, ``--out FILE``,
``--interval MS``, ``--max-interval MS``, ``--duration SECS``,
``--exclude-children``, ``--since-process-start``, ``--quiet``,
``--stats FILE``, ``--enable-ebpf``, ``--no-update``, ``--html FILE``.

``run`` exits with the command's exit code (128 + N when signal N ended it).
Ctrl-C (or SIGTERM to denet) and ``--duration`` end the command: SIGTERM to its
process group, SIGKILL to what is left after a 2 s grace period; the summary
is still printed and written.  ``attach`` never signals the process it watches.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import sys
import tempfile
import time
from typing import Any

from . import _formats

GRACE_SECS = 2.0
_POLL_SECS = 0.1
_STATUS_EVERY_SECS = 0.5


# --------------------------------------------------------------------------
# formatting


def fmt_bytes(n: Any) -> str:
    """``1536`` -> ``"1.5 KiB"``."""
    try:
        value = float(n)
    except (TypeError, ValueError):
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"  # pragma: no cover


def fmt_kib(n: Any) -> str:
    try:
        return fmt_bytes(float(n) * 1024)
    except (TypeError, ValueError):
        return "-"


def fmt_duration(secs: Any) -> str:
    """``75.5`` -> ``"1m15.5s"``."""
    try:
        secs = float(secs)
    except (TypeError, ValueError):
        return "-"
    if secs < 60:
        return f"{secs:.1f}s"
    minutes, s = divmod(secs, 60)
    if minutes < 60:
        return f"{int(minutes)}m{s:04.1f}s"
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours}h{minutes:02d}m{int(s):02d}s"


def _whole_tree(sample: dict | None) -> dict:
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


def status_line(sample: dict | None, elapsed: float, syscall_rate: float | None = None) -> str:
    """One-line live status for a sample."""
    view = _whole_tree(sample)
    if not view:
        return f"[{fmt_duration(elapsed)}] waiting for the first sample..."
    procs = view.get("process_count", 1)
    parts = [
        f"[{fmt_duration(elapsed)}]",
        f"procs {procs}",
        f"CPU {float(view.get('cpu_usage') or 0):.1f}%",
        f"mem {fmt_kib(view.get('mem_rss_kb', 0))}",
        f"threads {view.get('thread_count', 0)}",
        f"disk r {fmt_bytes(view.get('disk_read_bytes', 0))} w {fmt_bytes(view.get('disk_write_bytes', 0))}",
    ]
    if syscall_rate is not None:
        parts.append(f"syscalls {syscall_rate:,.0f}/s")
    return "  ".join(parts)


def summary_table(summary: dict, title: str = "denet summary", extra: list[tuple[str, str]] | None = None) -> str:
    """Human-readable summary table."""
    rows: list[tuple[str, str]] = list(extra or [])
    g = summary.get
    rows += [
        ("Wall time", fmt_duration(g("total_time_secs", 0))),
        ("Samples", str(g("sample_count", 0))),
        ("Max processes", str(g("max_processes", 0))),
        ("Max threads", str(g("max_threads", 0))),
        ("Avg CPU", f"{float(g('avg_cpu_usage') or 0):.1f} %"),
        ("CPU time", f"{float(g('total_cpu_time_secs') or 0):.2f} s"),
        ("Peak memory (tree RSS)", fmt_kib(g("peak_mem_rss_kb", 0))),
        ("Peak process RSS", fmt_kib(g("peak_process_rss_kb", 0))),
        ("Disk read / write", f"{fmt_bytes(g('total_disk_read_bytes', 0))} / {fmt_bytes(g('total_disk_write_bytes', 0))}"),
        (
            "Read / write calls",
            f"{fmt_bytes(g('total_syscall_read_bytes', 0))} / {fmt_bytes(g('total_syscall_write_bytes', 0))}",
        ),
        (
            "Network rx / tx (namespace)",
            f"{fmt_bytes(g('total_sys_net_rx_bytes', 0))} / {fmt_bytes(g('total_sys_net_tx_bytes', 0))}",
        ),
    ]
    if "total_syscalls" in summary:
        rows.append(("Syscalls", f"{int(g('total_syscalls') or 0):,}"))
        by_cat = g("syscalls_by_category") or {}
        if isinstance(by_cat, dict):
            for cat, count in sorted(by_cat.items(), key=lambda kv: -(kv[1] or 0)):
                if count:
                    rows.append((f"  {cat}", f"{int(count):,}"))
    if summary.get("estimated"):
        rows.append(("Estimated", ", ".join(summary["estimated"])))
    width = max(len(k) for k, _ in rows)
    lines = [title, "-" * max(len(title), width + 20)]
    lines += [f"  {k.ljust(width)}  {v}" for k, v in rows]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------
# argument parsing


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number of milliseconds: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _pid(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a process id: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"not a process id: {text!r}")
    return value


_DEFAULTS = {
    "json": False,
    "out": None,
    "interval": 100,
    "max_interval": 1000,
    "duration": None,
    "exclude_children": False,
    "since_process_start": False,
    "quiet": False,
    "stats": None,
    "enable_ebpf": False,
    "no_update": False,
    "html": None,
}


def _add_options(parser: argparse.ArgumentParser, with_defaults: bool) -> None:
    def d(name):
        return _DEFAULTS[name] if with_defaults else argparse.SUPPRESS

    parser.add_argument("--json", action="store_true", default=d("json"),
                        help="print each sample as one JSON line on stdout, then the summary line")
    parser.add_argument("--out", "-o", metavar="FILE", default=d("out"),
                        help="write samples to FILE as JSONL (metadata, samples and summary, tagged with 'kind')")
    parser.add_argument("--interval", "-i", metavar="MS", type=_positive_int, default=d("interval"),
                        help="base sampling interval in ms (default 100)")
    parser.add_argument("--max-interval", metavar="MS", type=_positive_int, default=d("max_interval"),
                        help="longest sampling interval in ms, reached after 10 s (default 1000)")
    parser.add_argument("--duration", "-d", metavar="SECS", type=_positive_float, default=d("duration"),
                        help="stop after SECS seconds (run: terminate the command; attach: detach)")
    parser.add_argument("--exclude-children", action="store_true", default=d("exclude_children"),
                        help="monitor only the process itself, not its children")
    parser.add_argument("--since-process-start", action="store_true", default=d("since_process_start"),
                        help="I/O counters since the process started rather than since monitoring began")
    parser.add_argument("--quiet", "-q", action="store_true", default=d("quiet"),
                        help="no status line and no summary table")
    parser.add_argument("--stats", metavar="FILE", default=d("stats"),
                        help="write the summary as JSON to FILE")
    parser.add_argument("--enable-ebpf", action="store_true", default=d("enable_ebpf"),
                        help="count system calls with eBPF (needs root or CAP_BPF+CAP_PERFMON)")
    parser.add_argument("--no-update", action="store_true", default=d("no_update"),
                        help="no live status line")
    parser.add_argument("--html", metavar="FILE", default=d("html"),
                        help="write an HTML report of the run to FILE (charts, processes, syscalls)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="denet",
        description="Monitor a process tree: CPU, memory, disk and network I/O, threads, system calls.",
        epilog="examples:\n"
               "  denet run -- python train.py\n"
               "  denet --json --out run.jsonl run -- make -j4\n"
               "  denet --duration 30 attach 1234\n"
               "  denet stats run.jsonl\n"
               "  denet report run.jsonl -o run.html",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_options(parser, with_defaults=True)
    sub = parser.add_subparsers(dest="command", metavar="{run,attach,stats,report}")

    run = sub.add_parser("run", help="run a command and monitor it", usage="denet [options] run [options] -- CMD [ARG...]")
    _add_options(run, with_defaults=False)
    run.add_argument("cmd", nargs=argparse.REMAINDER, help="the command (after --)")

    attach = sub.add_parser("attach", help="monitor a running process")
    _add_options(attach, with_defaults=False)
    attach.add_argument("pid", type=_pid, help="process id")

    stats = sub.add_parser("stats", help="summarise a recorded JSONL file")
    _add_options(stats, with_defaults=False)
    stats.add_argument("file", help="file written by --out (or a monitor's output_file)")
    _add_report_parser(sub)
    return parser


# --------------------------------------------------------------------------
# output helpers


def _err(msg: str) -> None:
    try:
        sys.stderr.write(f"denet: {msg}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


class _JsonForwarder:
    """Copies the monitor's JSONL output file to stdout line by line.

    The monitor's own summary line is skipped: the CLI prints exactly one
    summary line itself at the end.
    """

    def __init__(self, path: str):
        self.path = path
        self.fh = None
        self.partial = b""
        self.broken = False

    def pump(self, final: bool = False) -> None:
        if self.fh is None:
            try:
                self.fh = open(self.path, "rb")  # noqa: SIM115
            except OSError:
                return
        data = self.fh.read()
        if data:
            self.partial += data
        lines = self.partial.split(b"\n")
        self.partial = lines.pop()
        if final and self.partial.strip():
            lines.append(self.partial)
            self.partial = b""
        for raw in lines:
            parsed = _formats.parse_line(raw)
            if parsed is None or parsed[0] == "summary":
                continue
            self.write(raw.decode("utf-8", errors="replace").strip())

    def write(self, text: str) -> None:
        if self.broken:
            return
        try:
            sys.stdout.write(text + "\n")
            sys.stdout.flush()
        except BrokenPipeError:
            self.broken = True
            try:  # keep Python from complaining at exit
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, sys.stdout.fileno())
            except OSError:
                pass
        except (OSError, ValueError):
            self.broken = True

    def close(self) -> None:
        if self.fh is not None:
            self.fh.close()
            self.fh = None


class _Status:
    """The live status line on stderr (only on a terminal)."""

    def __init__(self, enabled: bool, ebpf: bool):
        self.enabled = enabled
        self.ebpf = ebpf
        self.last_draw = 0.0
        self.last_total: tuple[float, int] | None = None
        self.rate: float | None = None
        self.drawn = False
        self.ebpf_error_shown = False

    def _syscall_rate(self, sample: dict | None, now: float) -> float | None:
        ebpf = _whole_tree(sample).get("ebpf")
        if not isinstance(ebpf, dict):
            return None
        syscalls = ebpf.get("syscalls")
        if not isinstance(syscalls, dict) or not isinstance(syscalls.get("total"), (int, float)):
            return None
        total = int(syscalls["total"])
        if self.last_total is not None and now > self.last_total[0] and total >= self.last_total[1]:
            self.rate = (total - self.last_total[1]) / (now - self.last_total[0])
        elif self.rate is None:
            analysis = syscalls.get("analysis")
            if isinstance(analysis, dict) and isinstance(analysis.get("syscall_rate_per_sec"), (int, float)):
                self.rate = float(analysis["syscall_rate_per_sec"])
        self.last_total = (now, total)
        return self.rate

    def ebpf_error(self, sample: dict | None) -> str | None:
        ebpf = _whole_tree(sample).get("ebpf")
        if isinstance(ebpf, dict) and ebpf.get("error"):
            return str(ebpf["error"])
        return None

    def update(self, sample: dict | None, elapsed: float, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self.last_draw < _STATUS_EVERY_SECS:
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


class _Stopper:
    """Turns SIGINT/SIGTERM/SIGHUP into a flag; restores the handlers on exit."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self):
        self.count = 0
        self.signum: int | None = None
        self.saved: dict[int, Any] = {}

    def _handler(self, signum, frame):  # noqa: ARG002
        self.count += 1
        self.signum = signum

    def __enter__(self):
        for sig in self.SIGNALS:
            try:
                self.saved[sig] = signal.signal(sig, self._handler)
            except (ValueError, OSError):  # not the main thread
                pass
        return self

    def __exit__(self, *exc):
        for sig, handler in self.saved.items():
            try:
                signal.signal(sig, handler)
            except (ValueError, OSError):
                pass
        return False


def _killpg(pgid: int, sig: int) -> bool:
    try:
        os.killpg(pgid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def _load_extension():
    try:
        import denet._denet as _denet  # noqa: PLC0415
    except ImportError as e:
        _err(f"the native extension denet._denet is not available ({e}); build it with `make`")
        return None
    pkg = sys.modules.get("denet")
    cls = getattr(pkg, "ProcessMonitor", None) if pkg is not None else None
    return cls if cls is not None else _denet.ProcessMonitor


def _write_stats(path: str, summary: dict) -> bool:
    try:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(summary, f, indent=2)
            f.write("\n")
        return True
    except OSError as e:
        _err(f"cannot write --stats file {path}: {e.strerror or e}")
        return False


def _monitor_kwargs(args, output_file: str | None) -> dict:
    return {
        "base_interval_ms": args.interval,
        "max_interval_ms": args.max_interval,
        "since_process_start": args.since_process_start,
        "output_file": output_file,
        "output_format": "jsonl",
        "store_in_memory": False,
        "quiet": True,
        "include_children": not args.exclude_children,
        "write_metadata": output_file is not None,
        "enable_ebpf": args.enable_ebpf,
    }


def _finish_report(args, summary: dict, extra_rows: list[tuple[str, str]]) -> bool:
    """Print/write the summary as the options ask; False if --stats failed."""
    ok = True
    if args.json:
        line = json.dumps(_formats.tag(summary, "summary"), separators=(",", ":"))
        try:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
        except (OSError, ValueError):
            pass
    elif not args.quiet:
        try:
            sys.stderr.write(summary_table(summary, extra=extra_rows))
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
    if args.stats:
        ok = _write_stats(args.stats, summary)
    return ok


# --------------------------------------------------------------------------
# sub-commands


def _monitor_loop(monitor, args, status: _Status, forward: _JsonForwarder | None, stopper: _Stopper,
                  pgid: int | None) -> tuple[int | None, str | None]:
    """Sample until the process ends, a signal arrives or --duration passes.

    ``pgid`` set (run): stopping terminates that process group, SIGKILL after
    the grace period; returns the exit code.  ``pgid`` None (attach): stopping
    only detaches.  Returns ``(exit_code or None, reason it was stopped or None)``.
    """
    start = time.monotonic()
    reason: str | None = None
    kill_at: float | None = None
    killed = False
    code = None
    while True:
        if pgid is not None:
            code = monitor.wait(timeout=_POLL_SECS)
            if code is not None:
                break
        else:
            if not monitor.is_running():
                break
            time.sleep(_POLL_SECS)
        now = time.monotonic()
        if reason is None:
            if stopper.count:
                reason = "interrupted" if stopper.signum == signal.SIGINT else f"signal {stopper.signum}"
            elif args.duration is not None and now - start >= args.duration:
                reason = "duration"
            if reason is not None:
                if pgid is None:
                    break
                _killpg(pgid, signal.SIGTERM)
                kill_at = now + GRACE_SECS
        elif pgid is not None and not killed and (stopper.count > 1 or (kill_at is not None and now >= kill_at)):
            _killpg(pgid, signal.SIGKILL)
            killed = True
        if forward is not None:
            forward.pump()
        status.update(_latest(monitor), now - start)
    if pgid is not None and reason is not None:
        # The leader is gone; give the rest of the group what is left of the
        # grace period, then kill whatever still runs.
        while _group_alive(pgid) and kill_at is not None and time.monotonic() < kill_at and stopper.count < 2:
            time.sleep(0.05)
        if _group_alive(pgid):
            _killpg(pgid, signal.SIGKILL)
    return code, reason


def _latest(monitor) -> dict | None:
    try:
        return monitor.latest_sample()
    except Exception:
        return None


def _prepare_output(args) -> tuple[str | None, str | None]:
    """(output_file for the monitor, temporary file to delete or None)."""
    if args.out:
        return args.out, None
    if args.json or args.html:  # samples for --json to forward or for the --html report
        fd, path = tempfile.mkstemp(prefix="denet-", suffix=".jsonl")
        os.close(fd)
        return path, path
    return None, None


def _status_enabled(args) -> bool:
    if args.no_update or args.json or args.quiet:
        return False
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def _is_output_error(e: OSError, output_file: str | None) -> bool:
    """Whether an OSError from the monitor's constructor is about the output file."""
    if output_file is None or e.filename is None:
        return False
    try:
        return os.fsdecode(e.filename) == os.fsdecode(output_file)
    except (TypeError, ValueError):
        return False


def _stderr_fd() -> int:
    try:
        return sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        return 2


def _summarize(monitor) -> dict:
    summary = monitor.get_summary()
    if not isinstance(summary, dict):
        summary = json.loads(summary)
    return summary


def _report_ebpf_error(monitor, args) -> None:
    """Say once, on stderr, why eBPF collection was unavailable (monitoring went on)."""
    if not args.enable_ebpf or args.quiet:
        return
    error = getattr(monitor, "ebpf_error", None)
    if error is None:
        sample = _latest(monitor)
        ebpf = _whole_tree(sample).get("ebpf")
        if isinstance(ebpf, dict):
            error = ebpf.get("error")
    if error:
        _err(f"eBPF unavailable, no syscall counts: {error}")


def cmd_run(args) -> int:
    cmd = list(args.cmd or [])
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    if not cmd:
        _err("run: no command given; usage: denet [options] run -- CMD [ARG...]")
        return 2
    monitor_cls = _load_extension()
    if monitor_cls is None:
        return 1
    output_file, temp = _prepare_output(args)
    status = _Status(_status_enabled(args), args.enable_ebpf)
    forward = _JsonForwarder(output_file) if args.json and output_file else None
    try:
        with _Stopper() as stopper:
            try:
                monitor = monitor_cls(
                    cmd,
                    # with --json stdout carries the samples: the command's own
                    # stdout goes to stderr instead of being mixed in (or lost)
                    stdout=_stderr_fd() if args.json else None,
                    start_new_session=True,
                    **_monitor_kwargs(args, output_file),
                )
            except OSError as e:
                if _is_output_error(e, output_file):
                    _err(f"cannot write --out file {e.filename}: {e.strerror or e}")
                    return 1
                if isinstance(e, FileNotFoundError):
                    _err(f"{cmd[0]}: command not found")
                    return 127
                if isinstance(e, PermissionError):
                    _err(f"{cmd[0]}: permission denied")
                    return 126
                _err(f"{cmd[0]}: {e.strerror or e}")
                return 1
            except (ValueError, TypeError) as e:
                _err(str(e))
                return 1
            pid = monitor.get_pid()
            _report_ebpf_error(monitor, args)
            try:
                monitor.start()
                code, reason = _monitor_loop(monitor, args, status, forward, stopper, pgid=pid)
            except BaseException:
                # an error of our own: never leave the command running behind
                _killpg(pid, signal.SIGKILL)
                monitor.stop()
                status.clear()
                raise
            monitor.stop()
            status.clear()
            if forward is not None:
                forward.pump(final=True)
            summary = _summarize(monitor)
            if code is None:
                code = monitor.wait(timeout=GRACE_SECS)
            exit_code = 1 if code is None else (128 - code if code < 0 else code)
            extra = [("Command", shlex.join(cmd)), ("Exit code", _describe_exit(code))]
            if reason is not None:
                extra.append(("Stopped by", "--duration" if reason == "duration" else reason))
            if not _finish_report(args, summary, extra):
                return exit_code or 1
            if not _write_html(args, output_file, title=f"denet run -- {shlex.join(cmd)}"):
                return exit_code or 1
            return exit_code
    finally:
        if forward is not None:
            forward.close()
        if temp is not None:
            try:
                os.unlink(temp)
            except OSError:
                pass


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "unknown"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"{128 - code} (killed by {name})"
    return str(code)


def cmd_attach(args) -> int:
    monitor_cls = _load_extension()
    if monitor_cls is None:
        return 1
    output_file, temp = _prepare_output(args)
    status = _Status(_status_enabled(args), args.enable_ebpf)
    forward = _JsonForwarder(output_file) if args.json and output_file else None
    try:
        with _Stopper() as stopper:
            try:
                monitor = monitor_cls.from_pid(args.pid, **_monitor_kwargs(args, output_file))
            except ProcessLookupError:
                _err(f"attach: no process with pid {args.pid}")
                return 1
            except OSError as e:
                if _is_output_error(e, output_file):
                    _err(f"cannot write --out file {e.filename}: {e.strerror or e}")
                elif isinstance(e, PermissionError):
                    _err(f"attach: not allowed to monitor pid {args.pid}: {e.strerror or e}")
                else:
                    _err(f"attach: {e}")
                return 1
            except (ValueError, TypeError) as e:
                _err(str(e))
                return 1
            _report_ebpf_error(monitor, args)
            try:
                monitor.start()
                _, reason = _monitor_loop(monitor, args, status, forward, stopper, pgid=None)
            finally:
                monitor.stop()
            status.clear()
            if forward is not None:
                forward.pump(final=True)
            summary = _summarize(monitor)
            extra = [("Attached to pid", str(args.pid))]
            extra.append(("Stopped by", {None: "process exit", "duration": "--duration"}.get(reason, reason)))
            ok = _finish_report(args, summary, extra)
            return 0 if _write_html(args, output_file, title=f"denet attach {args.pid}") and ok else 1
    finally:
        if forward is not None:
            forward.close()
        if temp is not None:
            try:
                os.unlink(temp)
            except OSError:
                pass


def cmd_stats(args) -> int:
    from ._summary import generate_summary_from_file

    try:
        summary = generate_summary_from_file(args.file)
    except OSError as e:
        _err(f"stats: {e.strerror + ': ' + args.file if e.strerror else e}")
        return 1
    if args.json:
        sys.stdout.write(json.dumps(_formats.tag(summary, "summary"), separators=(",", ":")) + "\n")
    else:
        sys.stdout.write(summary_table(summary, title=f"denet summary of {args.file}"))
    sys.stdout.flush()
    if args.stats and not _write_stats(args.stats, summary):
        return 1
    if not _write_html(args, args.file):
        return 1
    return 0


# --------------------------------------------------------------------------
# HTML report: `denet report FILE -o OUT.html` and `--html FILE` (see denet.report)


def _add_report_parser(sub) -> None:
    report = sub.add_parser("report", help="write an HTML report of a recorded JSONL file",
                            usage="denet report FILE [-o OUT.html] [--title TEXT] [--offcpu-folded FILE]")
    report.add_argument("file", help="file written by --out (or a monitor's output_file)")
    report.add_argument("-o", "--output", dest="report_output", metavar="OUT.html", default=None,
                        help="where to write the report (default: FILE with the suffix .html)")
    report.add_argument("--title", default=None, help="heading of the report")
    report.add_argument("--offcpu-folded", metavar="FOLDED", default=None,
                        help="folded off-CPU stacks ('a;b;c 123' lines, values in ns) for a flame graph")


def _write_html(args, samples_file: str | None, *, output: str | None = None, title: str | None = None,
                folded: str | None = None) -> bool:
    """Write the HTML report of samples_file to --html (or output); False after an error."""
    target = output or getattr(args, "html", None)
    if not target:
        return True
    from . import report  # noqa: PLC0415

    try:
        run = report.load_run(samples_file)
        if folded:
            with open(folded, encoding="utf-8", errors="replace") as f:
                run.offcpu_folded = f.read()
    except OSError as e:
        _err(f"report: cannot read {e.filename}: {e.strerror}" if e.strerror else f"report: {e}")
        return False
    page = report.render_html(run.samples, run.summary, run.metadata, offcpu_folded=run.offcpu_folded,
                              title=title or f"denet report: {os.path.basename(samples_file)}")
    try:
        report.write_text(target, page)
    except OSError as e:
        _err(f"cannot write the HTML report {target}: {e.strerror or e}")
        return False
    if not getattr(args, "quiet", False):
        _err(f"HTML report written to {target}")
    return True


def cmd_report(args) -> int:
    output = args.report_output or args.out
    if not output:
        base, ext = os.path.splitext(args.file)
        output = (base if ext in (".jsonl", ".json") else args.file) + ".html"
    return 0 if _write_html(args, args.file, output=output, title=args.title, folded=args.offcpu_folded) else 1


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``denet`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    if args.command == "run":
        return cmd_run(args)
    if args.command == "attach":
        return cmd_attach(args)
    if args.command == "report":
        return cmd_report(args)
    return cmd_stats(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
