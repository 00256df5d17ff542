"""The ``denet`` command line: argument parsing and control flow.

::

    denet [options] run -- CMD [ARG...]   run CMD and monitor its process tree
    denet [options] attach PID            monitor a running process until it exits
    denet [options] stats FILE            summarise a file recorded with --out
    denet report FILE [-o OUT.html]       HTML report of a file recorded with --out
    denet --version

Options of ``run`` and ``attach`` (before or after the sub-command name): ``--out
FILE`` (``-o``), ``--interval MS`` (``-i``), ``--max-interval MS`` (``-m``),
``--duration SECS`` (``-d``), ``--exclude-children`` (``-n``),
``--since-process-start``, ``--enable-ebpf``, ``--gpu``/``--no-gpu``, ``--no-offcpu``,
``--no-offcpu-stacks``, ``--no-syscalls``, ``--offcpu-folded FILE``, ``--write-env``, ``--no-polling``,
``--no-update``.  Options of every sub-command: ``--json`` (``-j``), ``--stats
FILE``, ``--quiet``, ``--debug``, ``--format`` (of ``--out`` for run and attach,
taken from its extension by default; of ``FILE`` for stats, told from its content
by default), ``--html FILE`` (the HTML report, see :mod:`denet.report`).
``stats`` and ``report`` refuse the monitoring options instead of ignoring them.

``run`` exits with the command's exit code (128 + N when signal N ended it).
Ctrl-C (or SIGTERM to denet) and ``--duration`` end the command with the policy
of :mod:`denet._procgroup`: SIGTERM to its process group, SIGKILL to what is left
after a 2 s grace period; the summary is still printed and written.  ``attach``
never signals the process it watches.

What it prints (status line, summary table, byte and time formatting) is in
:mod:`denet._cli_format`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import signal
import sys
import tempfile
import time
from typing import Any

from . import __version__, _cli_format, _formats, _procgroup
from .execute import MAX_INTERVAL_MS

GRACE_SECS = _procgroup.GRACE_SECS
_POLL_SECS = 0.1
_MAX_PID = 2**31 - 1


# --------------------------------------------------------------------------
# argument parsing


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number of milliseconds: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    if value > MAX_INTERVAL_MS:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_INTERVAL_MS} ms (about 24.8 days), got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds > 0, got {text}")
    return value


def _pid(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a process id: {text!r}") from None
    if not 0 < value <= _MAX_PID:
        raise argparse.ArgumentTypeError(f"not a process id: {text!r} (process ids are 1 to {_MAX_PID})")
    return value


#: Defaults, filled in after parsing: every option is parsed with SUPPRESS so that
#: where it was given (and whether at all) is known.
_DEFAULTS = {
    "json": False,
    "stats": None,
    "quiet": False,
    "format": None,
    "out": None,
    "interval": 100,
    "max_interval": 1000,
    "duration": None,
    "exclude_children": False,
    "since_process_start": False,
    "enable_ebpf": False,
    "gpu": None,  # None: on when NVML loads; --gpu: True (say why not); --no-gpu: False
    "no_offcpu": False,
    "no_offcpu_stacks": False,
    "no_syscalls": False,
    "offcpu_folded": None,
    "no_update": False,
    "html": None,
    "write_env": False,
    "no_polling": False,
    "debug": False,
}
#: Options that only make sense while monitoring (run, attach), with their flag.
_MONITOR_OPTIONS = {
    "out": "--out",
    "interval": "--interval",
    "max_interval": "--max-interval",
    "duration": "--duration",
    "exclude_children": "--exclude-children",
    "since_process_start": "--since-process-start",
    "enable_ebpf": "--enable-ebpf",
    "gpu": "--gpu",
    "no_offcpu": "--no-offcpu",
    "no_offcpu_stacks": "--no-offcpu-stacks",
    "no_syscalls": "--no-syscalls",
    "offcpu_folded": "--offcpu-folded",
    "no_update": "--no-update",
    "write_env": "--write-env",
    "no_polling": "--no-polling",
}
_MONITOR_FLAGS = {"-o": "--out", "-i": "--interval", "-d": "--duration", "-m": "--max-interval",
                  "-n": "--exclude-children", "--no-gpu": "--no-gpu",
                  **{flag: flag for flag in _MONITOR_OPTIONS.values()}}


def _add_report_options(parser: argparse.ArgumentParser, where: str) -> None:
    """--json, --stats, --quiet, --format; ``where`` is "run", "stats" or "top"."""
    sup = argparse.SUPPRESS
    if where == "stats":
        json_help = "print the summary as one JSON line instead of the table"
        quiet_help = "print no table (with --stats: only write the file)"
        format_help = "format of FILE (default: told from its content)"
    else:
        json_help = ("print each sample as one JSON line on stdout, then the summary line "
                     "(stats: the summary line only)")
        quiet_help = "no status line and no summary table"
        format_help = ("format of the --out file (default: from its extension, .json, .csv or "
                       ".jsonl; else jsonl); for stats, the format of FILE")
    parser.add_argument("--json", "-j", action="store_true", default=sup, help=json_help)
    parser.add_argument("--stats", metavar="FILE", default=sup, help="write the summary as JSON to FILE")
    parser.add_argument("--quiet", "-q", action="store_true", default=sup, help=quiet_help)
    # Checked after parsing, so that an unknown one reads "Unknown format: NAME" (denet's words).
    parser.add_argument("--format", "-f", metavar="{" + ",".join(_formats.FILE_FORMATS) + "}",
                        default=sup, help=format_help)
    parser.add_argument("--debug", action="store_true", default=sup,
                        help="diagnostics on stderr: what each data source could do (capabilities) "
                             "and libbpf's log")
    parser.add_argument("--html", metavar="FILE", default=sup,
                        help="also write the HTML report to FILE (charts, processes, syscalls)")


def _add_monitor_options(parser: argparse.ArgumentParser, note: str = "") -> None:
    sup = argparse.SUPPRESS
    parser.add_argument("--out", "-o", metavar="FILE", default=sup,
                        help="write samples to FILE: JSONL (metadata, samples and summary, tagged with "
                             "'kind'), a JSON array or CSV, by --format or the extension" + note)
    parser.add_argument("--interval", "-i", metavar="MS", type=_positive_int, default=sup,
                        help="base sampling interval in ms (default 100)" + note)
    parser.add_argument("--max-interval", "-m", metavar="MS", type=_positive_int, default=sup,
                        help="longest sampling interval in ms, reached after 10 s (default 1000)" + note)
    parser.add_argument("--duration", "-d", metavar="SECS", type=_positive_float, default=sup,
                        help="stop after SECS seconds (run: terminate the command; attach: detach)" + note)
    parser.add_argument("--exclude-children", "-n", action="store_true", default=sup,
                        help="monitor only the process itself, not its children" + note)
    parser.add_argument("--since-process-start", action="store_true", default=sup,
                        help="I/O counters since the process started rather than since monitoring began" + note)
    parser.add_argument("--enable-ebpf", action="store_true", default=sup,
                        help="count system calls, and socket bytes per process (Linux 6.5+), with eBPF "
                             "(needs root or CAP_BPF+CAP_PERFMON)" + note)
    gpu = parser.add_mutually_exclusive_group()
    gpu.add_argument("--gpu", dest="gpu", action="store_const", const=True, default=sup,
                     help="monitor NVIDIA GPUs (NVML) and say why not when the driver is missing "
                          "(default: on when the driver's library loads)" + note)
    gpu.add_argument("--no-gpu", dest="gpu", action="store_const", const=False, default=sup,
                     help="no GPU monitoring" + note)
    parser.add_argument("--no-offcpu", action="store_true", default=sup,
                        help="with --enable-ebpf: no off-CPU profiling" + note)
    parser.add_argument("--no-offcpu-stacks", action="store_true", default=sup,
                        help="with --enable-ebpf: off-CPU times without stacks (cheaper)" + note)
    parser.add_argument("--no-syscalls", action="store_true", default=sup,
                        help="with --enable-ebpf: no system call counting (off-CPU time only; "
                             "cheaper for a process that makes many system calls)" + note)
    parser.add_argument("--offcpu-folded", metavar="FILE", default=sup,
                        help="with --enable-ebpf: write the off-CPU stacks to FILE in the folded "
                             "format of flame-graph tools (weights in microseconds)" + note)
    parser.add_argument("--no-update", action="store_true", default=sup, help="no live status line" + note)
    parser.add_argument("--write-env", action="store_true", default=sup,
                        help="start the --out file with the run's environment (host, kernel, CPU "
                             "topology, NUMA, affinity, cgroup and its limits)" + note)
    parser.add_argument("--no-polling", action="store_true", default=sup,
                        help="no periodic samples: wait for the process, then take one final "
                             "sample" + note)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="denet",
        description="Monitor a process tree: CPU, memory, disk and network I/O, threads, system calls.",
        epilog="examples:\n"
               "  denet run -- python train.py\n"
               "  denet --json --out run.jsonl run -- make -j4\n"
               "  denet --out run.csv run -- ./job     # CSV, from the extension\n"
               "  denet --duration 30 attach 1234\n"
               "  denet stats run.jsonl\n"
               "  denet report run.jsonl -o run.html",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", "-V", action="version", version=f"denet {__version__}")
    _add_report_options(parser, "top")
    _add_monitor_options(parser, note=" (run, attach)")
    sub = parser.add_subparsers(dest="command", metavar="{run,attach,stats,report}")

    run = sub.add_parser("run", help="run a command and monitor it",
                         usage="denet [options] run [options] -- CMD [ARG...]")
    _add_report_options(run, "run")
    _add_monitor_options(run)
    run.add_argument("cmd", nargs=argparse.REMAINDER, help="the command (after --)")

    attach = sub.add_parser("attach", help="monitor a running process")
    _add_report_options(attach, "run")
    _add_monitor_options(attach)
    attach.add_argument("pid", type=_pid, help="process id")

    stats = sub.add_parser("stats", help="summarise a recorded file (JSONL, JSON or CSV)")
    _add_report_options(stats, "stats")
    stats.add_argument("file", help="file written by --out (or a monitor's output_file)")
    _add_report_parser(sub)
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse and check the command line (argparse exits with status 2 on errors)."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    command = getattr(args, "command", None)
    if command in ("stats", "report"):
        # report's own --offcpu-folded reads stacks into the page; run's writes them
        own = {"offcpu_folded"} if command == "report" else set()
        given = [flag for dest, flag in _MONITOR_OPTIONS.items() if hasattr(args, dest) and dest not in own]
        flags = (_MONITOR_FLAGS.get(x.split("=", 1)[0]) for x in extra)
        given += [f for f in flags if f and not (command == "report" and f == "--offcpu-folded")]
        if given:
            parser.error(f"{given[0]} applies to run and attach, not to {command} "
                         f"({command} reads a recorded file)")
    if command == "report":
        given = [flag for dest, flag in (("json", "--json"), ("stats", "--stats")) if hasattr(args, dest)]
        if given:
            parser.error(f"{given[0]} does not apply to report, which writes an HTML page (use -o OUT.html)")
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    for dest, default in _DEFAULTS.items():
        if not hasattr(args, dest):
            setattr(args, dest, default)
    if args.format is not None and args.format not in _formats.FILE_FORMATS:
        parser.error(f"Unknown format: {args.format}; --format takes {', '.join(_formats.FILE_FORMATS)}")
    args.out_format = None
    if command in ("run", "attach"):
        if args.offcpu_folded is not None and not args.enable_ebpf:
            parser.error("--offcpu-folded needs --enable-ebpf (off-CPU stacks come from eBPF)")
        if args.offcpu_folded is not None and args.no_offcpu:
            parser.error("--offcpu-folded and --no-offcpu contradict each other")
        if args.no_syscalls and args.no_offcpu and args.enable_ebpf:
            parser.error("--no-syscalls with --no-offcpu leaves --enable-ebpf nothing to collect")
        if args.format is not None and args.out is None:
            parser.error("--format sets the format of the --out file: give --out FILE too")
        if args.out is not None:
            args.out_format = args.format or _formats.format_from_path(args.out) or "jsonl"
            if args.json and args.out_format != "jsonl":
                parser.error(f"--json streams samples as JSON lines, which needs --out in jsonl format, "
                             f"not {args.out_format} ({args.out}); use a .jsonl file, or leave out --json")
    return args


# --------------------------------------------------------------------------
# output helpers


def _err(msg: str) -> None:
    try:
        sys.stderr.write(f"denet: {msg}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def _json_text(obj: Any, **kw) -> str:
    """JSON text that is JSON: NaN and infinities become null, and we say so."""
    safe, replaced = _formats.json_safe(obj)
    if replaced:
        _err(f"{replaced} number(s) that were not finite written as null")
    return json.dumps(safe, allow_nan=False, **kw)


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


def _load_extension():
    try:
        import denet._denet as _denet  # noqa: PLC0415
    except ImportError as e:
        _err(f"the native extension denet._denet is not available ({e}); build it with `make`")
        return None
    pkg = sys.modules.get("denet")
    cls = getattr(pkg, "ProcessMonitor", None) if pkg is not None else None
    return cls if cls is not None else _denet.ProcessMonitor


def _write_text(path: str, text: str, option: str) -> bool:
    """Writes text to path; False after saying on stderr why it could not."""
    try:
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return True
    except OSError as e:
        _err(f"cannot write {option} file {path}: {e.strerror or e}")
        return False


def _write_stats(path: str, summary: dict) -> bool:
    return _write_text(path, _json_text(summary, indent=2) + "\n", "--stats")


def _monitor_kwargs(args, output_file: str | None) -> dict:
    return {
        "base_interval_ms": args.interval,
        "max_interval_ms": args.max_interval,
        "since_process_start": args.since_process_start,
        "output_file": output_file,
        "output_format": args.out_format or "jsonl",
        "store_in_memory": False,
        "quiet": True,
        "include_children": not args.exclude_children,
        "write_metadata": output_file is not None,
        "enable_ebpf": args.enable_ebpf,
        "gpu": args.gpu,
        "offcpu": not args.no_offcpu,
        "offcpu_stacks": not args.no_offcpu_stacks,
        "syscalls": not args.no_syscalls,
        "write_env": args.write_env,
    }


def _write_folded(monitor, path: str) -> bool:
    """--offcpu-folded: the off-CPU stacks for flame-graph tools; False after saying why
    when there are none to write or the file cannot be written."""
    try:
        text = monitor.offcpu_folded()
    except RuntimeError as e:
        _err(f"--offcpu-folded: nothing written: {e}")
        return False
    return _write_text(path, text, "--offcpu-folded")


def _final_offcpu(monitor) -> dict | None:
    """The off-CPU part of the last sample, for the summary table."""
    ebpf = _cli_format.whole_tree(_latest(monitor)).get("ebpf")
    offcpu = ebpf.get("offcpu") if isinstance(ebpf, dict) else None
    return offcpu if isinstance(offcpu, dict) else None


def _finish_report(args, summary: dict, extra_rows: list[tuple[str, str]],
                   streamed: bool = False, offcpu: dict | None = None) -> bool:
    """Print/write the summary as the options ask; False if --stats failed.
    ``streamed``: the monitor already wrote the summary line to stdout itself."""
    ok = True
    if args.json and streamed:
        pass
    elif args.json:
        line = _json_text(_formats.tag(summary, "summary"), separators=(",", ":"))
        try:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
        except (OSError, ValueError):
            pass
    elif not args.quiet:
        try:
            sys.stderr.write(_cli_format.summary_table(summary, extra=extra_rows, offcpu=offcpu))
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
    if args.stats:
        ok = _write_stats(args.stats, summary)
    return ok


# --------------------------------------------------------------------------
# sub-commands


def _monitor_loop(monitor, args, status: _cli_format.StatusLine, forward: _JsonForwarder | None,
                  stopper: _Stopper, pgid: int | None) -> tuple[int | None, str | None]:
    """Sample until the process ends, a signal arrives or --duration passes.

    ``pgid`` set (run): stopping stops that process group with the policy of
    :mod:`denet._procgroup` (SIGTERM, SIGKILL after the grace period or at a second
    signal); returns the exit code.  ``pgid`` None (attach): stopping only
    detaches.  Returns ``(exit_code or None, reason it was stopped or None)``.
    """
    start = time.monotonic()
    reason: str | None = None
    stop = _procgroup.GroupStop(pgid) if pgid is not None else None
    code = None
    while True:
        if pgid is not None and args.no_polling:
            # No sampler thread: the command's end is seen without reaping it, so that
            # the one sample is read from it (a zombie has its final counters).
            if not monitor.is_running():
                monitor.sample_once()
                code = monitor.wait(timeout=GRACE_SECS)
                break
            time.sleep(_POLL_SECS)
        elif pgid is not None:
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
                if stop is None:
                    break
                stop.start()
        elif stop is not None:
            stop.poll(hurry=stopper.count > 1)
        if forward is not None:
            forward.pump()
        status.update(_latest(monitor), now - start)
    if stop is not None and stop.started:
        # The leader is gone; give the rest of the group what is left of the
        # grace period, then kill whatever still runs.
        stop.finish(hurry=lambda: stopper.count > 1)
    if pgid is None and args.no_polling:
        monitor.sample_once()  # detaching from a live process (None once it is gone)
    return code, reason


def _stop(monitor) -> bool:
    """Stops the monitor; False (after saying so) when the output file could not be
    written completely, e.g. a full disk.  A reader of ``--json`` that went away
    (a closed pipe) is not an error."""
    try:
        monitor.stop()
    except BrokenPipeError:
        return True
    except OSError as e:
        _err(f"warning: {e.strerror or e}: the output is incomplete")
        return False
    return True


def _latest(monitor) -> dict | None:
    try:
        return monitor.latest_sample()
    except Exception:
        return None


def _prepare_output(args) -> tuple[str | int | None, str | None]:
    """(output_file for the monitor, temporary file to delete or None).

    ``--json`` alone hands our stdout's descriptor to the monitor: its writer streams
    metadata, samples and the summary line there itself (JSON lines, flushed per
    record), so nothing is copied.  With ``--out`` or ``--html`` as well the samples go
    to a file, which :class:`_JsonForwarder` follows and copies to stdout."""
    if args.out:
        return args.out, None
    if args.html:  # the --html report is made from a file of the samples
        fd, path = tempfile.mkstemp(prefix="denet-", suffix=".jsonl")
        os.close(fd)
        return path, path
    if args.json:
        try:
            sys.stdout.flush()
            return sys.stdout.fileno(), None
        except (AttributeError, OSError, ValueError):  # no real stdout: follow a file
            fd, path = tempfile.mkstemp(prefix="denet-", suffix=".jsonl")
            os.close(fd)
            return path, path
    return None, None


def _streams_to_stdout(output_file) -> bool:
    return isinstance(output_file, int)


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
        ebpf = _cli_format.whole_tree(sample).get("ebpf")
        if isinstance(ebpf, dict):
            error = ebpf.get("error")
    if error:
        _err(f"eBPF unavailable, no syscall counts: {error}")


def _report_gpu_error(monitor, args) -> None:
    """Say once, on stderr, why GPU monitoring is off when --gpu asked for it."""
    if args.gpu is not True or args.quiet:
        return
    error = getattr(monitor, "gpu_error", None)
    if error:
        _err(f"GPU monitoring unavailable: {error}")


def _debug_report(monitor, args) -> None:
    """--debug: what each data source could do for this run, and why not, on stderr."""
    if not args.debug:
        return
    try:
        caps = monitor.get_metadata().get("capabilities") or {}
    except Exception as e:  # noqa: BLE001 (diagnostics never stop monitoring)
        _err(f"debug: no capabilities: {e}")
        return
    for name, cap in caps.items():
        if not isinstance(cap, dict):
            continue
        ok = cap.get("available", cap.get("system") or cap.get("per_process"))
        why = cap.get("reason")
        _err(f"debug: {name}: {'available' if ok else 'unavailable'}" + (f" ({why})" if why else ""))


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
    status = _cli_format.StatusLine(_status_enabled(args), args.enable_ebpf)
    forward = (_JsonForwarder(output_file)
               if args.json and output_file is not None and not _streams_to_stdout(output_file) else None)
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
            _report_gpu_error(monitor, args)
            _debug_report(monitor, args)
            try:
                if not args.no_polling:
                    monitor.start()
                code, reason = _monitor_loop(monitor, args, status, forward, stopper, pgid=pid)
            except BaseException:
                # an error of our own: never leave the command running behind
                _procgroup.kill_group_now(pid)
                _stop(monitor)
                status.clear()
                raise
            out_ok = _stop(monitor)
            status.clear()
            if forward is not None:
                forward.pump(final=True)
            summary = _summarize(monitor)
            if args.offcpu_folded is not None:
                out_ok = _write_folded(monitor, args.offcpu_folded) and out_ok
            if code is None:
                code = monitor.wait(timeout=GRACE_SECS)
            exit_code = 1 if code is None else (128 - code if code < 0 else code)
            extra = [("Command", shlex.join(cmd)), ("Exit code", _describe_exit(code))]
            if reason is not None:
                extra.append(("Stopped by", "--duration" if reason == "duration" else reason))
            if not _finish_report(args, summary, extra, _streams_to_stdout(output_file),
                                  _final_offcpu(monitor)) or not out_ok:
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
    status = _cli_format.StatusLine(_status_enabled(args), args.enable_ebpf)
    forward = (_JsonForwarder(output_file)
               if args.json and output_file is not None and not _streams_to_stdout(output_file) else None)
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
            _report_gpu_error(monitor, args)
            _debug_report(monitor, args)
            out_ok = False
            try:
                if not args.no_polling:
                    monitor.start()
                _, reason = _monitor_loop(monitor, args, status, forward, stopper, pgid=None)
            finally:
                out_ok = _stop(monitor)
            status.clear()
            if forward is not None:
                forward.pump(final=True)
            summary = _summarize(monitor)
            if args.offcpu_folded is not None:
                out_ok = _write_folded(monitor, args.offcpu_folded) and out_ok
            extra = [("Attached to pid", str(args.pid))]
            extra.append(("Stopped by", {None: "process exit", "duration": "--duration"}.get(reason, reason)))
            ok = _finish_report(args, summary, extra, _streams_to_stdout(output_file),
                                _final_offcpu(monitor)) and out_ok
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
    from ._summary import summarize_file

    try:
        summary, contents = summarize_file(args.file, args.format)
    except OSError as e:
        _err(f"stats: {e.strerror + ': ' + args.file if e.strerror else e}")
        return 1
    if contents.problems:
        _err(f"stats: {args.file}: skipped {contents.describe_problems()}; "
             "the summary leaves them out")
    try:
        if args.json:
            sys.stdout.write(_json_text(_formats.tag(summary, "summary"), separators=(",", ":")) + "\n")
        elif not args.quiet:
            sys.stdout.write(_cli_format.summary_table(summary, title=f"denet summary of {args.file}"))
        sys.stdout.flush()
    except BrokenPipeError:
        pass
    if args.stats and not _write_stats(args.stats, summary):
        return 1
    if not _write_html(args, args.file, file_format=args.format):
        return 1
    return 0


# --------------------------------------------------------------------------
# HTML report: `denet report FILE -o OUT.html` and `--html FILE` (see denet.report)


def _add_report_parser(sub) -> None:
    report = sub.add_parser("report", help="write an HTML report of a recorded file",
                            usage="denet report FILE [-o OUT.html] [--title TEXT] [--offcpu-folded FILE]")
    report.add_argument("file", help="file written by --out (or a monitor's output_file): JSONL, JSON or CSV")
    report.add_argument("-o", "--output", dest="report_output", metavar="OUT.html", default=None,
                        help="where to write the report (default: FILE with the suffix .html)")
    report.add_argument("--title", default=None, help="heading of the report")
    report.add_argument("--offcpu-folded", metavar="FOLDED", default=None,
                        help="folded off-CPU stacks ('a;b;c 123' lines, values in ns) for a flame graph")
    report.add_argument("--format", "-f", choices=_formats.FILE_FORMATS, default=argparse.SUPPRESS,
                        help="format of FILE (default: told from its content)")
    report.add_argument("--quiet", "-q", action="store_true", default=argparse.SUPPRESS,
                        help="do not say where the report was written")


def _write_html(args, samples_file: str | None, *, output: str | None = None, title: str | None = None,
                folded: str | None = None, file_format: str | None = None) -> bool:
    """Write the HTML report of samples_file to --html (or output); False after an error."""
    target = output or getattr(args, "html", None)
    if not target:
        return True
    from . import report  # noqa: PLC0415

    try:
        run = report.load_run(samples_file, file_format)
        if folded:
            with open(folded, encoding="utf-8", errors="replace") as f:
                run.offcpu_folded = f.read()
    except OSError as e:
        _err(f"report: cannot read {e.filename}: {e.strerror}" if e.strerror else f"report: {e}")
        return False
    if run.problems:
        _err(f"report: {samples_file}: skipped {run.problems}; the report leaves them out")
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
    output = args.report_output or args.html
    if not output:
        base, ext = os.path.splitext(args.file)
        output = (base if ext.lower() in (".jsonl", ".ndjson", ".json", ".csv") else args.file) + ".html"
    ok = _write_html(args, args.file, output=output, title=args.title, folded=args.offcpu_folded,
                     file_format=args.format)
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``denet`` console script; returns the exit status."""
    args = parse_args(argv)
    if args.debug:
        os.environ.setdefault("DENET_DEBUG_BPF", "1")  # libbpf's own log on stderr
    if args.command is None:
        build_parser().print_help(sys.stderr)
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
