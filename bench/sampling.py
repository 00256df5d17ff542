"""Time one tree sample with denet and with psutil doing the same reads, side by side.

Workload: a root process with N-1 sleeping children (trees of 1, 10, 50 and 200
processes). denet: ProcessMonitor.from_pid(root).sample_once(), which reads CPU, memory,
I/O, faults and threads of every process, finds the children, and builds the dict.
psutil: children(recursive=True) plus cpu_percent(), memory_info(), io_counters() and
num_threads() of every process (Process objects are reused between rounds, as denet keeps
its files open). Rounds alternate between the two so machine noise hits both alike.
"""
import os
import statistics
import subprocess
import sys
import time

import denet

try:
    import psutil
except ImportError:  # pragma: no cover
    psutil = None

SIZES = [1, 10, 50, 200]
ROUNDS = 15


def spawn_tree(n):
    code = ("import subprocess, sys, time\n"
            f"ps = [subprocess.Popen(['sleep', '600']) for _ in range({n - 1})]\n"
            "print('ready', flush=True)\n"
            "time.sleep(600)\n")
    root = subprocess.Popen([sys.executable, "-S", "-c", code], stdout=subprocess.PIPE,
                            text=True)
    assert root.stdout.readline().strip() == "ready"
    return root


def kill_tree(root):
    for c in psutil.Process(root.pid).children(recursive=True) if psutil else []:
        c.kill()
    root.kill()
    root.wait()


class PsutilSampler:
    def __init__(self, pid):
        self.root = psutil.Process(pid)
        self.cache = {}

    def sample(self):
        procs = [self.root] + self.root.children(recursive=True)
        out = []
        for p in procs:
            p = self.cache.setdefault(p.pid, p)
            try:
                out.append((p.cpu_percent(), p.memory_info(), p.io_counters(), p.num_threads()))
            except psutil.NoSuchProcess:
                pass
        return out


def time_per_call(fn, calls):
    t = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - t) / calls


def main():
    if psutil is None:
        print("psutil is not installed (apt-get install python3-psutil); nothing to compare")
        return 1
    print(f"denet {denet.__version__} vs psutil {psutil.__version__}: one tree sample "
          f"(median of {ROUNDS} alternating rounds)")
    print(f"{'processes':>9} {'denet µs':>10} {'µs/proc':>8} {'psutil µs':>10} {'µs/proc':>8}"
          f" {'ratio':>7}")
    results = []
    for n in SIZES:
        root = spawn_tree(n)
        try:
            mon = denet.ProcessMonitor.from_pid(root.pid, store_in_memory=False)
            ps = PsutilSampler(root.pid)
            s = mon.sample_once()
            assert s["aggregated"]["process_count"] == n, s["aggregated"]["process_count"]
            assert len(ps.sample()) == n
            calls = max(5, 2000 // n)
            d, p = [], []
            for _ in range(ROUNDS):
                d.append(time_per_call(mon.sample_once, calls))
                p.append(time_per_call(ps.sample, max(2, calls // 10)))
            dm, pm = statistics.median(d) * 1e6, statistics.median(p) * 1e6
            results.append((n, dm, pm))
            print(f"{n:>9} {dm:>10.1f} {dm / n:>8.2f} {pm:>10.1f} {pm / n:>8.2f} "
                  f"{pm / dm:>6.1f}x")
        finally:
            kill_tree(root)
    n50 = [r for r in results if r[0] == 50][0]
    print(f"\nat 50 processes denet is {n50[2] / n50[1]:.1f}x faster than psutil "
          f"(target >= 20x) and takes {n50[1] / 50:.2f} µs per process (target < 10 µs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
