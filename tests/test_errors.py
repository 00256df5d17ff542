"""Bad input gets a Python exception that names the problem (SPEC §6), never a crash."""
import os
import subprocess
import sys

import pytest

import denet
from conftest import PY


def test_empty_cmd():
    with pytest.raises(ValueError, match="cmd is empty"):
        denet.ProcessMonitor([])


def test_cmd_as_single_string_is_a_type_error():
    with pytest.raises(TypeError, match="list of strings"):
        denet.ProcessMonitor("sleep 1")


@pytest.mark.parametrize("cmd", [[1, 2], ["ls", None], None, 42])
def test_wrong_cmd_types(cmd):
    with pytest.raises(TypeError):
        denet.ProcessMonitor(cmd)


def test_nul_in_argument():
    with pytest.raises(ValueError, match="(?i)null|NUL"):
        denet.ProcessMonitor(["echo", "a\0b"])


def test_missing_executable():
    with pytest.raises(FileNotFoundError) as e:
        denet.ProcessMonitor(["definitely-not-a-program-xyz"])
    assert "definitely-not-a-program-xyz" in str(e.value)
    with pytest.raises(FileNotFoundError):
        denet.ProcessMonitor(["/nonexistent/dir/prog"])


def test_not_executable_file(tmp_path):
    f = tmp_path / "script.sh"
    f.write_text("#!/bin/sh\necho hi\n")
    f.chmod(0o644)
    if os.geteuid() == 0:
        # root may execute anything with an x bit; without one, exec still fails.
        pass
    with pytest.raises(PermissionError):
        denet.ProcessMonitor([str(f)])


def test_bad_cwd_reports_the_directory(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(FileNotFoundError) as e:
        denet.ProcessMonitor(["true"], cwd=str(missing))
    assert "working directory" in str(e.value)


def test_unknown_pid():
    # pid_max bounds real pids; a free one near the top is practically never in use.
    pid = int(open("/proc/sys/kernel/pid_max").read()) - 1
    with pytest.raises(ProcessLookupError):
        denet.ProcessMonitor.from_pid(pid)


@pytest.mark.parametrize("pid", [0, -5])
def test_invalid_pid_values(pid):
    with pytest.raises(ValueError):
        denet.ProcessMonitor.from_pid(pid)


@pytest.mark.parametrize("pid", ["123", 1.5, None, True])
def test_pid_wrong_type(pid):
    with pytest.raises(TypeError):
        denet.ProcessMonitor.from_pid(pid)


def test_reaped_pid_is_unknown():
    p = subprocess.Popen(["true"])
    p.wait()
    with pytest.raises(ProcessLookupError):
        denet.ProcessMonitor.from_pid(p.pid)


def test_pid_exiting_during_construction_never_crashes():
    # Races either way: the monitor is built (and soon sees the exit) or the pid is gone.
    for _ in range(30):
        p = subprocess.Popen(["true"])
        try:
            mon = denet.ProcessMonitor.from_pid(p.pid)
        except ProcessLookupError:
            p.wait()
            continue
        p.wait()
        assert mon.sample_once() is None or mon.sample_once() is None
        assert mon.is_running() is False
        assert mon.wait(timeout=5) is None  # not our child: no exit status


@pytest.mark.parametrize("kw", [
    {"base_interval_ms": 0}, {"base_interval_ms": -1}, {"max_interval_ms": 0},
    {"max_interval_ms": -100},
])
def test_non_positive_intervals(kw):
    with pytest.raises(ValueError, match="must be positive"):
        denet.ProcessMonitor(["true"], **kw)
    with pytest.raises(ValueError, match="must be positive"):
        denet.ProcessMonitor.from_pid(os.getpid(), **kw)


def test_base_greater_than_max_is_accepted():
    mon = denet.ProcessMonitor(["true"], base_interval_ms=500, max_interval_ms=100)
    assert mon.run() == 0


@pytest.mark.parametrize("kw", [{"base_interval_ms": "100"}, {"max_interval_ms": 1.5},
                                {"output_format": 3}, {"output_file": 12.5}])
def test_wrong_keyword_types(kw):
    with pytest.raises(TypeError):
        denet.ProcessMonitor(["true"], **kw)


def test_unknown_output_format(tmp_path):
    with pytest.raises(ValueError, match="unknown output_format 'xml'"):
        denet.ProcessMonitor(["true"], output_file=str(tmp_path / "x"), output_format="xml")
    mon = denet.ProcessMonitor(["true"])
    mon.run()
    with pytest.raises(ValueError, match="unknown format"):
        mon.save_samples(str(tmp_path / "y"), format="yaml")


def test_unwritable_output_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        denet.ProcessMonitor(["true"], output_file=str(tmp_path / "no" / "such" / "dir.jsonl"))
    with pytest.raises(IsADirectoryError):
        denet.ProcessMonitor(["true"], output_file=str(tmp_path))
    mon = denet.ProcessMonitor(["true"])
    mon.run()
    with pytest.raises(OSError):
        mon.save_samples(str(tmp_path / "missing" / "out.jsonl"))


def test_no_child_is_started_when_arguments_are_bad(tmp_path):
    marker = tmp_path / "ran"
    with pytest.raises(ValueError):
        denet.ProcessMonitor(["touch", str(marker)], output_file=str(tmp_path / "o"),
                             output_format="nope")
    assert not marker.exists()


def test_stdout_pipe_is_refused_with_a_pointer():
    with pytest.raises(ValueError, match="execute_with_monitoring"):
        denet.ProcessMonitor(["true"], stdout=subprocess.PIPE)


def test_bad_env():
    with pytest.raises(ValueError):
        denet.ProcessMonitor(["true"], env={"A=B": "x"})
    with pytest.raises(TypeError):
        denet.ProcessMonitor(["true"], env=["A=B"])


def test_wait_timeout_validation():
    mon = denet.ProcessMonitor(["sleep", "5"])
    try:
        with pytest.raises(ValueError):
            mon.wait(timeout=-1)
        assert mon.wait(timeout=0.05) is None  # still running
    finally:
        os.kill(mon.get_pid(), 9)
        assert mon.wait() == -9


def test_uninitialized_subclass_is_an_error_not_a_crash():
    class Broken(denet.ProcessMonitor):
        def __init__(self):
            pass

    b = Broken()
    for call in (b.start, b.stop, b.sample_once, b.get_samples, b.get_summary, b.is_running):
        with pytest.raises(RuntimeError, match="not initialized"):
            call()
    repr(b)


def test_double_init_is_refused():
    mon = denet.ProcessMonitor(["true"])
    with pytest.raises(RuntimeError):
        mon.__init__(["true"])
    mon.run()
