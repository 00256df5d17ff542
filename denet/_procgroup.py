"""Stopping a command and its children: the one kill policy of denet's Python layer.

Used by the CLI (``denet run``: Ctrl-C, SIGTERM to denet, ``--duration``) and by
``execute_with_monitoring`` (``timeout``, Ctrl-C, a failed attach).  Both start the
command in a session of its own (``start_new_session=True``), so its process group id
is its pid and every child it starts is in that group unless it moves itself out.

The policy, with the same times that ``ProcessMonitor.run()`` (monitor.c in the
extension) uses on Ctrl-C:

1. SIGTERM to the whole process group, so the command and its children can clean up;
2. wait up to :data:`GRACE_SECS` (2 s) for every process of the group to exit;
3. SIGKILL to whatever is left of the group; then wait at most
   :data:`KILL_WAIT_SECS` (5 s) for the command to be reaped.

A second Ctrl-C (or any caller-defined "hurry") during step 2 goes to step 3 at once.
The difference from ``ProcessMonitor.run()``: that one signals the command's pid only,
because a command it started may share the caller's own process group.

Signalling a group that is gone, or whose members all belong to another user, is not
an error here (nothing to signal): cleanup code must never stop half way.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Callable

#: Seconds between SIGTERM and SIGKILL (as ProcessMonitor.run() in the extension).
GRACE_SECS = 2.0
#: Longest wait, after SIGKILL, for the command to be reaped (as ProcessMonitor.run()).
KILL_WAIT_SECS = 5.0
#: How often the blocking helpers look at the group while they wait.
POLL_SECS = 0.05


def signal_group(pgid: int, sig: int) -> bool:
    """Send ``sig`` to process group ``pgid``; False when the group is gone (or not ours)."""
    try:
        os.killpg(pgid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def group_alive(pgid: int) -> bool:
    """Whether process group ``pgid`` still has a member (zombies not yet reaped count)."""
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def kill_group_now(pgid: int) -> None:
    """SIGKILL to the group at once: for errors of our own, where waiting makes no sense."""
    signal_group(pgid, signal.SIGKILL)


class GroupStop:
    """The policy as a state machine, for callers that keep working while the group stops
    (the CLI goes on sampling and drawing its status line during the grace period).

    ``start()`` sends SIGTERM and sets the deadline; call ``poll()`` from the caller's
    loop, which sends SIGKILL once the deadline passes (or at once with ``hurry=True``);
    ``finish()`` blocks until the group is gone or the deadline passes, then SIGKILLs
    what is left.
    """

    def __init__(self, pgid: int, grace: float = GRACE_SECS, clock: Callable[[], float] = time.monotonic):
        self.pgid = pgid
        self.grace = grace
        self.clock = clock
        self.deadline: float | None = None
        self.killed = False

    @property
    def started(self) -> bool:
        return self.deadline is not None

    def start(self) -> None:
        """Step 1: SIGTERM to the group (once)."""
        if self.deadline is None:
            self.deadline = self.clock() + self.grace
            signal_group(self.pgid, signal.SIGTERM)

    def kill(self) -> None:
        """Step 3: SIGKILL to what is left of the group (once)."""
        if not self.killed:
            self.killed = True
            signal_group(self.pgid, signal.SIGKILL)

    def poll(self, hurry: bool = False) -> None:
        """SIGKILL when started and the grace period is over, or ``hurry``."""
        if self.deadline is not None and not self.killed and (hurry or self.clock() >= self.deadline):
            self.kill()

    def finish(self, reap: Callable[[], object] | None = None,
               hurry: Callable[[], bool] = lambda: False) -> None:
        """Wait out the rest of the grace period for the whole group to exit (calling
        ``reap`` each round so the command's own zombie does not keep the group alive),
        then SIGKILL whatever is left."""
        self.start()
        while not self.killed and not hurry() and self.clock() < self.deadline:
            if reap is not None:
                reap()
            if not group_alive(self.pgid):
                return
            time.sleep(POLL_SECS)
        if group_alive(self.pgid):
            self.killed = True
            signal_group(self.pgid, signal.SIGKILL)  # again if need be: members may be new


def stop_group(pgid: int, reap: Callable[[], object] | None = None, grace: float = GRACE_SECS) -> bool:
    """The whole policy, blocking: SIGTERM, up to ``grace`` seconds, SIGKILL.

    ``reap`` (for example ``Popen.poll``) is called while waiting.  A KeyboardInterrupt
    during the wait sends SIGKILL at once and is re-raised.  Returns True when SIGKILL
    was needed.
    """
    stop = GroupStop(pgid, grace)
    try:
        stop.finish(reap)
    except KeyboardInterrupt:
        stop.kill()
        raise
    return stop.killed
