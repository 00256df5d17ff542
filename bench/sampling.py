"""Time one tree sample with denet and with psutil doing the same reads, side by side.

Workload: a root process with N-1 sleeping children (trees of 1, 10, 50 and 200
processes). denet: ProcessMonitor.from_pid(root).sample_once(), which reads CPU, memory,
I/O, faults and threads of every process, finds the children, and builds the dict.
psutil: children(recursive=True) plus cpu_percent(), memory_info(), io_counters() and
num_threads() of every process (Process objects are reused between rounds, as denet keeps
its files open). Rounds alternate between the tools so machine noise hits all alike.

denet is timed three ways:
- "procfs": reading /proc, the default and the only way without privilege. A process whose
  CPU clock has not moved since the last sample has not run, so only its clock and memory
  are read again; the sleeping children here are that case.
- "procfs-full": the same with every file read every time (DENET_ALWAYS_FULL_READ=1), the
  cost for a tree whose every process ran since the last sample.
- "ebpf" (root): enable_ebpf=True, where the tree comes from the BPF tracked-process map
  and one read of a BPF task iterator replaces the per-process /proc files.
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
    ebpf, why = denet.ebpf_available()
    modes = [("procfs", False), ("procfs-full", False)] + ([("ebpf", True)] if ebpf else [])
    print(f"denet {denet.__version__} vs psutil {psutil.__version__}: one tree sample, "
          f"median of {ROUNDS} alternating rounds, µs per sample (µs per process)")
    if not ebpf:
        print(f"(denet eBPF mode not measured: {why})")
    head = f"{'processes':>9} {'psutil':>16}"
    for name, _ in modes:
        head += f" {name:>16} {'vs psutil':>9}"
    print(head)
    results = {}
    for n in SIZES:
        root = spawn_tree(n)
        try:
            ps = PsutilSampler(root.pid)
            assert len(ps.sample()) == n
            mons = []
            for name, on in modes:
                if name == "procfs-full":
                    os.environ["DENET_ALWAYS_FULL_READ"] = "1"
                mon = denet.ProcessMonitor.from_pid(root.pid, store_in_memory=False,
                                                    enable_ebpf=on, quiet=True)
                os.environ.pop("DENET_ALWAYS_FULL_READ", None)
                s = mon.sample_once()
                assert s["aggregated"]["process_count"] == n, (name, s["aggregated"])
                mons.append(mon)
            calls = max(5, 2000 // n)
            times = {name: [] for name, _ in modes}
            times["psutil"] = []
            for _ in range(ROUNDS):
                for (name, _), mon in zip(modes, mons):
                    times[name].append(time_per_call(mon.sample_once, calls))
                times["psutil"].append(time_per_call(ps.sample, max(2, calls // 10)))
            med = {k: statistics.median(v) * 1e6 for k, v in times.items()}
            results[n] = med
            line = f"{n:>9} {med['psutil']:>8.0f} ({med['psutil'] / n:>5.1f})"
            for name, _ in modes:
                line += (f" {med[name]:>8.0f} ({med[name] / n:>5.1f})"
                         f" {med['psutil'] / med[name]:>8.1f}x")
            print(line)
        finally:
            kill_tree(root)
    r = results[50]
    print()
    for name, _ in modes:
        print(f"at 50 processes, denet {name}: {r['psutil'] / r[name]:.1f}x faster than psutil "
              f"(target >= 20x), {r[name] / 50:.1f} µs per process (target < 10 µs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
