"""``execute_with_monitoring``: run a command under ``subprocess`` with denet watching.

Pure Python on top of :class:`subprocess.Popen` and
``ProcessMonitor.from_pid``.  For a monitor that starts the command itself (and,
with eBPF, registers it before it execs) use ``ProcessMonitor(cmd, ...)``.
"""

from __future__ import annotations

import math
import os
import shlex
import signal
import subprocess
import sys
import threading
import warnings
from typing import Any, BinaryIO

from . import _procgroup

__all__ = ["execute_with_monitoring"]

_OUTPUT_FORMATS = ("jsonl", "json", "csv")
_DRAIN_JOIN_SECS = 2.0
#: The extension keeps intervals in a C int of milliseconds (about 24.8 days).
MAX_INTERVAL_MS = 2**31 - 1


def _check_interval(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int number of milliseconds, not {type(value).__name__}")
    if value <= 0:
        raise ValueError(f"{name} must be > 0 ms, got {value}")
    if value > MAX_INTERVAL_MS:
        raise ValueError(f"{name} must be at most {MAX_INTERVAL_MS} ms (about 24.8 days), got {value}")
    return value


def _check_timeout(timeout: Any) -> float | None:
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"timeout must be a number of seconds or None, not {type(timeout).__name__}")
    if not math.isfinite(timeout):
        raise ValueError(f"timeout must be a finite number of seconds (or None for no timeout), got {timeout}")
    if timeout <= 0:
        raise ValueError(f"timeout must be > 0 seconds, got {timeout}")
    return timeout


def _normalize_cmd(cmd: Any) -> list[str]:
    if isinstance(cmd, (str, bytes)):
        if isinstance(cmd, bytes):
            cmd = os.fsdecode(cmd)
        args = shlex.split(cmd)
    elif isinstance(cmd, (list, tuple)):
        args = []
        for arg in cmd:
            if isinstance(arg, (str, bytes, os.PathLike)):
                args.append(os.fsdecode(os.fspath(arg)))
            else:
                raise TypeError(f"cmd must contain strings, found {type(arg).__name__}: {arg!r}")
    else:
        raise TypeError(f"cmd must be a list of strings or a string, not {type(cmd).__name__}")
    if not args:
        raise ValueError("cmd is empty: give the program to run and its arguments")
    if not args[0]:
        raise ValueError("cmd[0] is empty: give the program to run")
    return args


def _open_output(target: Any, what: str):
    """Return (file object or fd for Popen, file object to close or None)."""
    if target is None:
        return None, None
    if target is subprocess.DEVNULL:
        return subprocess.DEVNULL, None
    if isinstance(target, (str, bytes, os.PathLike)):
        fh = open(target, "wb")  # noqa: SIM115 (closed by the caller)
        return fh, fh
    if isinstance(target, int) and not isinstance(target, bool):
        return target, None
    if hasattr(target, "fileno"):
        return target, None
    raise TypeError(f"{what} must be a path, an open file or subprocess.DEVNULL, not {type(target).__name__}")


def _drain(pipe: BinaryIO, sink_name: str, quiet: bool) -> None:
    """Read a child's pipe to EOF, copying to our own stdout/stderr unless quiet.

    The target stream is looked up at each write so redirections made while the
    child runs (pytest's capture, contextlib.redirect_stdout) are honoured.
    """
    fd = pipe.fileno()
    try:
        while True:
            try:
                chunk = os.read(fd, 65536)
            except InterruptedError:
                continue
            except OSError:
                break
            if not chunk:
                break
            if quiet:
                continue
            stream = getattr(sys, sink_name, None)
            if stream is None:
                continue
            try:
                buf = getattr(stream, "buffer", None)
                if buf is not None:
                    stream.flush()  # keep order with text already written to the stream
                    buf.write(chunk)
                    buf.flush()
                else:
                    stream.write(chunk.decode(getattr(stream, "encoding", None) or "utf-8", errors="replace"))
                    stream.flush()
            except (OSError, ValueError):
                pass  # our own stream is closed or broken: keep draining anyway
    finally:
        try:
            pipe.close()
        except OSError:
            pass


def execute_with_monitoring(
    cmd,
    stdout_file=None,
    stderr_file=None,
    timeout: float | None = None,
    base_interval_ms: int = 100,
    max_interval_ms: int = 1000,
    store_in_memory: bool = True,
    output_file=None,
    output_format: str = "jsonl",
    since_process_start: bool = False,
    pause_for_attachment: bool = True,
    quiet: bool = False,
    include_children: bool = True,
    write_metadata: bool = False,
    enable_ebpf: bool = False,
    offcpu: bool = True,
    offcpu_stacks: bool = True,
    gpu: bool | None = None,
    syscalls: bool = True,
    write_env: bool = False,
):
    """Run ``cmd`` and monitor it (and, by default, its children) until it exits.

    Args:
        cmd: the command as a list of strings, or a string split with
            :func:`shlex.split` (no shell is involved).
        stdout_file, stderr_file: where the command's output goes: a path
            (truncated), an open file, a file descriptor or
            ``subprocess.DEVNULL``.  When not given, the output is read through
            a pipe by a background thread (so a chatty command never blocks) and
            copied to this process's ``sys.stdout``/``sys.stderr`` -- or dropped
            when ``quiet``.
        timeout: seconds to wait (a finite number > 0, or None).  On expiry the
            command's whole process group gets SIGTERM, then SIGKILL after a
            2 s grace period (see ``denet._procgroup``), and
            :class:`subprocess.TimeoutExpired` is raised.
        base_interval_ms, max_interval_ms: the adaptive sampling interval: base
            for the first second, a ramp to max by 10 s, then max.
        store_in_memory: keep samples for ``monitor.get_samples()``.
        output_file, output_format: also write samples to a file
            (``"jsonl"``, ``"json"`` or ``"csv"``).
        since_process_start: I/O counters since the process started instead of
            since the first sample.
        pause_for_attachment: stop the command (SIGSTOP to its process group)
            right after it starts, attach the monitor, then continue it
            (SIGCONT), so almost nothing runs unobserved.
        quiet: drop the command's drained output and ask the monitor not to print.
        include_children: monitor the whole process tree (tree samples) or only
            the command (flat samples).
        write_metadata: write the metadata record to ``output_file``.
        enable_ebpf: syscall counts and off-CPU profiling through eBPF (root).
        offcpu, offcpu_stacks: with ``enable_ebpf``, off-CPU time, and its stacks.
        syscalls: with ``enable_ebpf``, count system calls (``False``: off-CPU
            time only, cheaper for a process that makes many system calls).
        gpu: NVIDIA GPU monitoring through NVML: ``True`` (a missing driver
            is then reported in the samples and with a RuntimeWarning),
            ``False``, or ``None`` (the default): on when the driver's
            library loads.
        write_env: write the run's environment (the ``"env"`` record: host,
            kernel, CPU topology, NUMA, affinity, cgroup and its limits) to
            ``output_file`` before the metadata; ``monitor.get_env()`` returns it.

    Returns:
        ``(exit_code, monitor)``: the command's exit status (negative signal
        number if a signal killed it, as in :mod:`subprocess`) and the stopped
        ``ProcessMonitor`` with its samples and summary.

    Raises:
        ValueError: empty ``cmd``, an interval that is not 1 to 2**31-1 ms, a
            timeout that is not a finite number > 0, unknown ``output_format``.
        TypeError: arguments of the wrong type.
        FileNotFoundError, PermissionError: the command cannot be started.
        subprocess.TimeoutExpired: ``timeout`` expired (the command is killed).
    """
    args = _normalize_cmd(cmd)
    _check_interval("base_interval_ms", base_interval_ms)
    _check_interval("max_interval_ms", max_interval_ms)
    timeout = _check_timeout(timeout)
    if gpu is not None and not isinstance(gpu, bool):
        raise TypeError(f"gpu must be True, False or None, not {type(gpu).__name__}")
    if not isinstance(output_format, str) or output_format not in _OUTPUT_FORMATS:
        raise ValueError(f"Unknown format: {output_format}; unknown output_format {output_format!r}; "
                         f"use one of {', '.join(_OUTPUT_FORMATS)}")

    import denet._denet as _denet  # lazy: the pure modules work without the extension

    monitor_cls = _monitor_class(_denet)

    to_close = []
    stdout_target, fh = _open_output(stdout_file, "stdout_file")
    if fh is not None:
        to_close.append(fh)
    try:
        stderr_target, fh = _open_output(stderr_file, "stderr_file")
        if fh is not None:
            to_close.append(fh)
    except BaseException:
        for f in to_close:
            f.close()
        raise

    proc = None
    monitor = None
    drains: list[threading.Thread] = []
    try:
        proc = subprocess.Popen(
            args,
            stdin=None,
            stdout=subprocess.PIPE if stdout_target is None else stdout_target,
            stderr=subprocess.PIPE if stderr_target is None else stderr_target,
            start_new_session=True,
        )
        pgid = proc.pid  # start_new_session: the child leads its own group
        paused = False
        if pause_for_attachment:
            _procgroup.signal_group(pgid, signal.SIGSTOP)
            paused = True
        # Start draining at once: a paused child writes nothing, a running one
        # must never block on a full pipe while we attach.
        for pipe, name in ((proc.stdout, "stdout"), (proc.stderr, "stderr")):
            if pipe is not None:
                t = threading.Thread(
                    target=_drain, args=(pipe, name, quiet), name=f"denet-drain-{name}", daemon=True
                )
                t.start()
                drains.append(t)
        try:
            monitor = monitor_cls.from_pid(
                proc.pid,
                base_interval_ms=base_interval_ms,
                max_interval_ms=max_interval_ms,
                since_process_start=since_process_start,
                output_file=None if output_file is None else os.fspath(output_file),
                output_format=output_format,
                store_in_memory=store_in_memory,
                quiet=quiet,
                include_children=include_children,
                write_metadata=write_metadata,
                enable_ebpf=enable_ebpf,
                offcpu=offcpu,
                offcpu_stacks=offcpu_stacks,
                syscalls=syscalls,
                gpu=gpu,
                write_env=write_env,
            )
            monitor.start()
        finally:
            if paused:
                _procgroup.signal_group(pgid, signal.SIGCONT)

        try:
            exit_code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
        else:
            timed_out = False
    except BaseException:
        # Ctrl-C, a failed attach, ...: leave nothing running behind.
        try:
            if proc is not None and (proc.poll() is None or _procgroup.group_alive(proc.pid)):
                _stop_command(proc)
        finally:
            _finish(monitor, drains)
            for f in to_close:
                _close(f)
        raise
    try:
        if timed_out:
            _stop_command(proc)
            raise subprocess.TimeoutExpired(args, timeout)
        return exit_code, monitor
    finally:
        _finish(monitor, drains)
        for f in to_close:
            _close(f)


def _stop_command(proc: subprocess.Popen) -> None:
    """The kill policy of denet._procgroup for the command's process group, then reap it."""
    try:
        _procgroup.stop_group(proc.pid, reap=proc.poll)
    finally:
        if proc.poll() is None:
            proc.kill()
        try:
            proc.wait(timeout=_procgroup.KILL_WAIT_SECS)
        except subprocess.TimeoutExpired:
            pass  # unkillable for now (uninterruptible sleep): Popen reaps it later


def _close(f) -> None:
    try:
        f.close()
    except OSError:
        pass


def _monitor_class(_denet):
    # Honour monkey-patching / subclass substitution through ``denet.ProcessMonitor``.
    pkg = sys.modules.get("denet")
    cls = getattr(pkg, "ProcessMonitor", None) if pkg is not None else None
    return cls if cls is not None else _denet.ProcessMonitor


def _finish(monitor, drains) -> None:
    if monitor is not None:
        try:
            monitor.stop()
        except OSError as e:
            # output_file could not be written completely (a full disk): the samples in
            # memory are fine, the file is not, and the caller must hear of it.
            warnings.warn(f"denet: {e}", RuntimeWarning, stacklevel=3)
        except Exception:
            pass
    for t in drains:
        t.join(_DRAIN_JOIN_SECS)
