"""denet._procgroup: the one kill policy (SIGTERM to the group, grace, SIGKILL), on real
process groups."""

import os
import signal
import subprocess
import sys
import time

from denet import _procgroup


def start_group(setup=""):
    """A Python child in a session of its own that runs `setup`, starts `sleep 30`,
    says so and sleeps; returns (Popen, grandchild pid) once it is ready."""
    script = (setup + "\nimport subprocess, sys, time\n"
              "g = subprocess.Popen(['sleep', '30'])\n"
              "print(g.pid, flush=True)\n"
              "time.sleep(30)\n")
    p = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                         start_new_session=True)
    return p, int(p.stdout.readline())


IGNORE_SIGTERM = "import signal; signal.signal(signal.SIGTERM, signal.SIG_IGN)"


def gone(pid, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False


def test_policy_times_match_process_monitor_run():
    # ProcessMonitor.run() in the extension: SIGTERM, 2 s, SIGKILL, up to 5 s more
    assert _procgroup.GRACE_SECS == 2.0
    assert _procgroup.KILL_WAIT_SECS == 5.0


def test_group_that_obeys_sigterm_needs_no_sigkill():
    p, grandchild = start_group()
    try:
        assert _procgroup.stop_group(p.pid, reap=p.poll) is False
        assert p.wait(timeout=5) == -signal.SIGTERM
        assert gone(grandchild)
        assert not _procgroup.group_alive(p.pid)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_group_that_ignores_sigterm_gets_sigkill_after_the_grace_period():
    p, grandchild = start_group(IGNORE_SIGTERM)
    try:
        assert _procgroup.stop_group(p.pid, reap=p.poll, grace=0.3) is True
        assert p.wait(timeout=5) == -signal.SIGKILL
        assert gone(grandchild)  # the obedient grandchild went at SIGTERM already
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_gone_group_is_not_an_error():
    p = subprocess.Popen(["true"], start_new_session=True)
    p.wait()
    assert _procgroup.signal_group(p.pid, signal.SIGTERM) is False
    assert _procgroup.group_alive(p.pid) is False
    assert _procgroup.stop_group(p.pid) is False


def test_hurry_kills_at_once():
    p, _ = start_group(IGNORE_SIGTERM)
    try:
        stop = _procgroup.GroupStop(p.pid, grace=60.0)
        stop.start()
        stop.poll()
        assert not stop.killed  # within the grace period
        stop.finish(reap=p.poll, hurry=lambda: True)
        assert stop.killed
        assert p.wait(timeout=5) == -signal.SIGKILL
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
