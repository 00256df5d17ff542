"""What off-CPU profiling costs a context-switch-heavy process: denet's eBPF off-CPU
profiler without and with stacks, next to libbpf-tools' offcputime, in one run.

Workload: two threads of one process play ping-pong over two pipes, one byte at a time,
so every round trip blocks each thread once (two context switches out, two in). That
is the worst case for an off-CPU profiler, which works at every context switch.

The workload is pinned to one CPU (--cpu, or --no-pin), so each round trip is two
direct switches between its threads: far steadier on a shared machine than two threads
that wake each other across CPUs.

Two measures:
1. Wall time, each run timed from the workload's fork to its exit by a small C wrapper,
   so tool start-up and the final report are not charged to the workload; tools
   alternate run by run so machine noise hits all alike; the table shows medians.
2. The BPF program's own time per context switch, from the kernel's BPF statistics
   (kernel.bpf_stats_enabled, on for one extra run of each tool only): run time over
   run count of the sched_switch program of denet and of offcputime. It does not move
   with the load of other processes.

Tools:
  unmonitored           the workload alone
  floor                 the workload with an empty program on sched_switch attached
                        (bench/floor_switch.bpf.c): what any BPF off-CPU profiler pays
                        for running at every context switch, before doing anything
  floor, both hooks     the same with an empty program on sys_enter too
                        (bench/floor.bpf.c): the floor of a tool that also counts
                        system calls, as denet's default eBPF run does
  denet off-CPU alone   enable_ebpf=True, syscalls=False, offcpu_stacks=False: the
                        off-CPU profiler without the syscall counter
  denet syscalls only   enable_ebpf=True, offcpu=False: the syscall counter every
                        denet eBPF run has (a reference point)
  denet off-CPU         enable_ebpf=True, offcpu_stacks=False: times per thread, state
                        and syscall, no stacks
  denet off-CPU+stacks  enable_ebpf=True: the same with user and kernel stacks
  offcputime -p         libbpf-tools offcputime (user and kernel stacks), attached to
                        the workload's pid before it starts

Needs root. Peers that cannot run here are skipped with a note.

    python3 bench/offcpu.py [--runs N] [--quick] [--turns]

--turns: each thread waits for its byte by read() and by poll() then read() by turns, so
it blocks at several places (a profiler that caches one place's stacks walks them at
every switch).
"""
import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

import denet

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import syscalls as sysbench  # noqa: E402  (the timing wrapper and helpers)

# argv[2] "turns": each thread waits for its byte by read() on even round trips and by
# poll() then read() on odd ones, so it blocks at more than one place (read, poll, and
# the preemption that can follow the write that wakes its peer) by turns.
PINGPONG_C = r"""
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
static int ab[2], ba[2], turns;
static long n;
static int get(int fd, long i, char *c)
{
    if (turns && (i & 1)) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, -1) != 1)
            return -1;
    }
    return (int)read(fd, c, 1);
}
static void *pong(void *arg)
{
    (void)arg;
    char c;
    for (long i = 0; i < n; i++)
        if (get(ab[0], i, &c) != 1 || write(ba[1], &c, 1) != 1)
            exit(2);
    return NULL;
}
int main(int argc, char **argv)
{
    n = atol(argv[1]);
    turns = argc > 2 && strcmp(argv[2], "turns") == 0;
    if (pipe(ab) || pipe(ba))
        return 1;
    pthread_t t;
    pthread_create(&t, NULL, pong, NULL);
    char c = 'x';
    for (long i = 0; i < n; i++)
        if (write(ab[1], &c, 1) != 1 || get(ba[0], i, &c) != 1)
            return 3;
    pthread_join(t, NULL);
    return 0;
}
"""

Skip = sysbench.Skip


def sched_switch_stats(pid):
    """(run_time_ns, run_cnt) summed over the sched_switch programs process pid holds."""
    ids = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fdinfo"):
            try:
                with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                    text = f.read()
            except OSError:
                continue
            for line in text.splitlines():
                if line.startswith("prog_id:"):
                    ids.add(int(line.split()[1]))
    except OSError:
        return None
    bpftool = shutil.which("bpftool") or shutil.which("bpftool", path="/usr/sbin:/sbin")
    if not bpftool:
        return None
    ns = cnt = 0
    for i in ids:
        r = subprocess.run([bpftool, "prog", "show", "id", str(i), "-j"], capture_output=True,
                           text=True)
        if r.returncode:
            continue
        info = json.loads(r.stdout)
        if "sched_switch" in info.get("name", ""):
            ns += info.get("run_time_ns", 0)
            cnt += info.get("run_cnt", 0)
    return (ns, cnt) if cnt else None


class BpfStats:
    """kernel.bpf_stats_enabled on for the duration (it costs a little per run)."""

    PATH = "/proc/sys/kernel/bpf_stats_enabled"

    def __enter__(self):
        with open(self.PATH) as f:
            self.old = f.read().strip()
        with open(self.PATH, "w") as f:
            f.write("1")
        return self

    def __exit__(self, *exc):
        with open(self.PATH, "w") as f:
            f.write(self.old)


def has_bpf_link(pid):
    """Whether process pid holds a BPF link (offcputime has attached)."""
    try:
        for fd in os.listdir(f"/proc/{pid}/fdinfo"):
            with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                if "link_type:" in f.read():
                    return True
    except OSError:
        pass
    return False


class Bench:
    def __init__(self, tmp, runs):
        self.tmp = tmp
        self.runs = runs
        self.timeit = sysbench.build(tmp, "timeit", sysbench.TIMEIT_C)
        self.result = os.path.join(tmp, "result")
        self.notes = []
        self.skipped = {}
        self.events = {}
        self.stats = None  # (ns, count) of the last run's sched_switch program, when asked
        self.floor_prog = sysbench.Floor(tmp, "floor_switch.bpf.c")
        self.floor_sys = sysbench.Floor(tmp, "floor.bpf.c")

    def wrapped(self, cmd, hold=False):
        return [self.timeit, self.result] + (["--hold"] if hold else []) + ["--"] + cmd

    def unmonitored(self, cmd):
        subprocess.run(self.wrapped(cmd), check=True, stdout=subprocess.DEVNULL)
        return sysbench.read_time(self.result)

    def _denet(self, cmd, name, **kw):
        ok, reason = denet.ebpf_available()
        if not ok:
            raise Skip(f"denet: eBPF unavailable: {reason}")
        mon = denet.ProcessMonitor(self.wrapped(cmd), enable_ebpf=True, quiet=True,
                                   stdout=subprocess.DEVNULL, store_in_memory=False, **kw)
        mon.start()
        code = mon.wait()
        self.stats = sched_switch_stats(os.getpid())  # before stop() unloads it
        mon.stop()
        if mon.ebpf_error:
            raise Skip(f"denet: eBPF unavailable: {mon.ebpf_error}")
        if code != 0:
            raise RuntimeError(f"workload failed under denet: exit {code}")
        oc = mon.latest_sample()["aggregated"]["ebpf"].get("offcpu")
        if kw.get("offcpu", True) and oc is None:
            raise Skip(f"{name}: {mon.latest_sample()['aggregated']['ebpf'].get('error')}")
        if oc is not None:
            self.events[name] = oc["total_events"]
            if oc.get("dropped_events"):
                self.notes.append(f"{name}: {oc['dropped_events']} intervals dropped")
        return sysbench.read_time(self.result)

    def floor(self, cmd):
        with self.floor_prog.attached():
            return self.unmonitored(cmd)

    def floor_both(self, cmd):
        with self.floor_prog.attached(), self.floor_sys.attached():
            return self.unmonitored(cmd)

    def offcpu_alone(self, cmd):
        return self._denet(cmd, "off-CPU alone", offcpu_stacks=False, syscalls=False)

    def syscalls_only(self, cmd):
        return self._denet(cmd, "syscalls only", offcpu=False)

    def offcpu(self, cmd):
        return self._denet(cmd, "off-CPU", offcpu_stacks=False)

    def offcpu_stacks(self, cmd):
        return self._denet(cmd, "off-CPU+stacks")

    def offcputime(self, cmd):
        exe = shutil.which("offcputime") or shutil.which("offcputime", path="/usr/sbin:/sbin")
        if not exe:
            raise Skip("offcputime: not installed (apt-get install libbpf-tools)")
        w = subprocess.Popen(self.wrapped(cmd, hold=True), stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
        child = int(w.stdout.readline())
        out = open(os.path.join(self.tmp, "offcputime.out"), "w")
        oc = subprocess.Popen([exe, "-p", str(child)], stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while not has_bpf_link(oc.pid):  # it prints nothing until the end
            if oc.poll() is not None or time.monotonic() > deadline:
                w.kill()
                w.wait()
                oc.kill()
                oc.wait()
                out.close()
                with open(out.name) as f:
                    raise Skip(f"offcputime: did not attach: {f.read().strip()[:200]}")
            time.sleep(0.02)
        w.stdin.write("go\n")
        w.stdin.close()
        w.wait()
        self.stats = sched_switch_stats(oc.pid)
        oc.send_signal(signal.SIGINT)
        oc.wait(timeout=60)
        out.close()
        return sysbench.read_time(self.result)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=7, help="rounds (default 7)")
    ap.add_argument("--quick", action="store_true", help="a smaller workload, 3 rounds")
    ap.add_argument("--trips", type=int, default=100_000, help="ping-pong round trips")
    ap.add_argument("--cpu", type=int, default=(os.cpu_count() or 1) - 1,
                    help="the CPU the workload is pinned to (default: the last)")
    ap.add_argument("--no-pin", action="store_true", help="let the threads run on any CPU")
    ap.add_argument("--turns", action="store_true",
                    help="each thread waits by read() and by poll() by turns (several places)")
    args = ap.parse_args()
    if args.quick:
        args.runs = 3
        args.trips = 30_000
    if not shutil.which("gcc"):
        sys.exit("bench/offcpu.py needs gcc for the workload and the timing wrapper")
    if os.geteuid() != 0:
        print("note: not root: denet's eBPF profiler and offcputime will be skipped",
              file=sys.stderr)
    tmp = tempfile.mkdtemp(prefix="denet-bench-")
    try:
        b = Bench(tmp, args.runs)
        cmd = [sysbench.build(tmp, "pingpong", PINGPONG_C, ["-pthread"]), str(args.trips)]
        if args.turns:
            cmd.append("turns")
        taskset = shutil.which("taskset")
        if not args.no_pin and taskset:
            cmd = [taskset, "-c", str(args.cpu)] + cmd  # it execs the workload: same pid
        tools = [("unmonitored", b.unmonitored), ("floor", b.floor),
                 ("floor, both hooks", b.floor_both),
                 ("denet off-CPU alone", b.offcpu_alone),
                 ("denet syscalls only", b.syscalls_only),
                 ("denet off-CPU", b.offcpu), ("denet off-CPU+stacks", b.offcpu_stacks),
                 ("offcputime -p", b.offcputime)]
        stats_tools = ("denet off-CPU alone", "denet off-CPU", "denet off-CPU+stacks",
                       "offcputime -p")
        times = {t: [] for t, _ in tools}
        print(f"running pipe ping-pong{' (read and poll by turns)' if args.turns else ''}, "
              f"{args.trips} round trips ...", file=sys.stderr, flush=True)
        b.unmonitored(cmd)  # warm up
        for _ in range(args.runs):
            for name, fn in tools:
                if name in b.skipped:
                    continue
                try:
                    times[name].append(fn(cmd))
                except Skip as e:
                    b.skipped[name] = " ".join(str(e).split())
                    b.notes.append(f"skipped {b.skipped[name]}")
        per_switch = {}
        if os.path.exists(BpfStats.PATH) and os.geteuid() == 0:
            with BpfStats():
                for name, fn in tools:
                    if name not in stats_tools or name in b.skipped:
                        continue
                    b.stats = None
                    try:
                        fn(cmd)
                    except Skip:
                        continue
                    if b.stats:
                        per_switch[name] = b.stats
        base = statistics.median(times["unmonitored"])
        floor = statistics.median(times["floor"]) if times["floor"] else None
        both = (statistics.median(times["floor, both hooks"]) if times["floor, both hooks"]
                else None)
        rows = []
        for name, _ in tools:
            if not times[name]:
                rows.append((name, "-", "skipped", "-", "-"))
                continue
            med = statistics.median(times[name])
            per_trip = (med - base) / args.trips * 1e6
            # vs floor: each tool against the empty programs at the hooks it uses
            # (sched_switch alone, or sched_switch and sys_enter)
            ref = (floor if name in ("floor", "denet off-CPU alone", "offcputime -p") else
                   both if name in ("floor, both hooks", "denet off-CPU",
                                    "denet off-CPU+stacks") else None)
            vs_floor = f"{med / ref:.2f}x" if ref else ""
            rows.append((name, f"{med:.3f}", f"{med / base:.2f}x",
                         "-" if name == "unmonitored" else f"{per_trip:+.2f}", vs_floor))
        sysbench.print_table(("tool", "median s", "vs unmonitored", "µs added per round trip",
                              "vs floor"), rows)
        if per_switch:
            print("\nBPF program time per sched_switch (kernel BPF statistics, one run each):")
            for name, (ns, cnt) in per_switch.items():
                print(f"  {name:22s} {ns / cnt:7.0f} ns over {cnt} switches")
        pinned = "" if args.no_pin or not shutil.which("taskset") else f", pinned to CPU {args.cpu}"
        print(f"\n{args.runs} rounds, {args.trips} round trips{pinned}"
              f"{', read and poll by turns' if args.turns else ''}, {os.cpu_count()} CPUs, "
              f"kernel {os.uname().release}")
        for name, n in b.events.items():
            print(f"note: {name}: {n} off-CPU intervals in the last run "
                  f"({n / args.trips:.2f} per round trip)")
        for n in dict.fromkeys(b.notes):
            print("note:", n)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
