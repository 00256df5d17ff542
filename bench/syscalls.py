"""What counting every syscall of a process costs it: denet's eBPF syscall collector next to
strace -c -f, perf trace -s and libbpf-tools syscount, on the same workloads in one run.

Workloads (each a single process, so syscount -p sees all of it):
  storm       a C loop of syscall(SYS_getppid): the cheapest syscall, back to back, the
              worst case for any per-syscall tracer
  tar         tar of /usr/include into a file on /dev/shm: a syscall-heavy real program
  compileall  python3 -m compileall -f over a copy of part of the standard library

Every run goes through a small C wrapper that forks the workload and times it from fork
(or from the go signal when held) to exit, so tool start-up and tear-down (loading BPF,
perf reading symbols) are not charged to the workload; the ratio is the slowdown of the
workload itself. Runs alternate between tools so machine noise hits all alike; the table
shows the median over runs and its ratio to the unmonitored median.

Peers that cannot run here (not installed, no permission) are skipped with a note.
Needs root for denet's eBPF collector, perf trace and syscount.

    python3 bench/syscalls.py [--runs N] [--quick]
"""
import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

import denet

STORM_C = r"""
#include <stdlib.h>
#include <unistd.h>
#include <sys/syscall.h>
int main(int argc, char **argv)
{
    long n = atol(argv[1]);
    for (long i = 0; i < n; i++)
        syscall(SYS_getppid);
    return 0;
}
"""

# timeit RESULT [--hold] -- CMD...: runs CMD in a child and writes its wall time (s) to
# RESULT. With --hold the child is forked first, its pid printed on stdout, and it execs
# only after a line arrives on stdin (so a tracer can attach to that pid first).
TIMEIT_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/wait.h>
static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}
int main(int argc, char **argv)
{
    const char *result = argv[1];
    int hold = strcmp(argv[2], "--hold") == 0;
    char **cmd = argv + (hold ? 4 : 3);
    int go[2];
    if (pipe(go))
        return 125;
    double t0 = now();
    pid_t pid = fork();
    if (pid == 0) {
        char c;
        close(go[1]);
        if (hold && read(go[0], &c, 1) != 1)
            _exit(126);
        close(go[0]);
        execvp(cmd[0], cmd);
        _exit(127);
    }
    close(go[0]);
    if (hold) {
        char line[64];
        printf("%d\n", (int)pid);
        fflush(stdout);
        if (!fgets(line, sizeof line, stdin))
            return 125;
        t0 = now();
        if (write(go[1], "g", 1) != 1)
            return 125;
    }
    int st;
    waitpid(pid, &st, 0);
    double t1 = now();
    FILE *f = fopen(result, "w");
    fprintf(f, "%.6f\n", t1 - t0);
    fclose(f);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}
"""


class Skip(Exception):
    """This tool cannot run here; the message says why."""


def build(tmp, name, src, flags=(), libs=()):
    """Compiles the C program src with gcc into tmp/name; libs go after the source."""
    exe = os.path.join(tmp, name)
    with open(exe + ".c", "w") as f:
        f.write(src)
    subprocess.run(["gcc", "-O2", *flags, "-o", exe, exe + ".c", *libs], check=True)
    return exe


def read_time(path):
    with open(path) as f:
        return float(f.read())


class Bench:
    def __init__(self, tmp, runs):
        self.tmp = tmp
        self.runs = runs
        self.timeit = build(tmp, "timeit", TIMEIT_C)
        self.result = os.path.join(tmp, "result")
        self.notes = []
        self.skipped = {}  # tool -> why; a tool that cannot run is not retried

    def wrapped(self, cmd, hold=False):
        return [self.timeit, self.result] + (["--hold"] if hold else []) + ["--"] + cmd

    # -- the tools: each runs cmd once and returns the workload's wall time -------------

    def unmonitored(self, cmd):
        subprocess.run(self.wrapped(cmd), check=True, stdout=subprocess.DEVNULL)
        return read_time(self.result)

    def denet(self, cmd):
        ok, reason = denet.ebpf_available()
        if not ok:
            raise Skip(f"denet: eBPF unavailable: {reason}")
        mon = denet.ProcessMonitor(self.wrapped(cmd), enable_ebpf=True, quiet=True,
                                   stdout=subprocess.DEVNULL, store_in_memory=False)
        code = mon.run()
        if mon.ebpf_error:
            raise Skip(f"denet: eBPF unavailable: {mon.ebpf_error}")
        if code != 0:
            raise RuntimeError(f"workload failed under denet: exit {code}")
        self.last_denet = mon.latest_sample()["aggregated"]["ebpf"]["syscalls"]
        return read_time(self.result)

    def strace(self, cmd):
        exe = shutil.which("strace")
        if not exe:
            raise Skip("strace: not installed (apt-get install strace)")
        out = os.path.join(self.tmp, "strace.out")
        r = subprocess.run([exe, "-c", "-f", "-o", out] + self.wrapped(cmd),
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if r.returncode != 0:
            raise Skip(f"strace: {r.stderr.strip()[:200]}")
        return read_time(self.result)

    def perf_trace(self, cmd):
        exe = shutil.which("perf")
        if not exe:
            raise Skip("perf trace: not installed (apt-get install linux-perf)")
        out = os.path.join(self.tmp, "perf.out")
        r = subprocess.run([exe, "trace", "-s", "-o", out, "--"] + self.wrapped(cmd),
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if r.returncode != 0 or not os.path.getsize(out):
            why = r.stderr.strip()[:200] or (f"exit {r.returncode}; it needs root or "
                                             "kernel.perf_event_paranoid=-1 and tracefs")
            raise Skip(f"perf trace: {why}")
        return read_time(self.result)

    def syscount(self, cmd):
        exe = shutil.which("syscount") or shutil.which("syscount", path="/usr/sbin:/sbin")
        if not exe:
            raise Skip("syscount: not installed (apt-get install libbpf-tools)")
        w = subprocess.Popen(self.wrapped(cmd, hold=True), stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
        child = int(w.stdout.readline())
        # line-buffered, so the banner arrives as soon as it is printed
        stdbuf = shutil.which("stdbuf")
        sc = subprocess.Popen(([stdbuf, "-oL"] if stdbuf else []) + [exe, "-p", str(child)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        banner = sc.stdout.readline()  # printed once the programs are attached
        if not banner.startswith("Tracing"):
            w.kill()
            w.wait()
            sc.kill()
            rest = sc.communicate()[0]
            raise Skip(f"syscount: {(banner + rest).strip()[:200]}")
        w.stdin.write("go\n")
        w.stdin.close()
        w.wait()
        sc.send_signal(signal.SIGINT)
        sc.communicate(timeout=30)
        return read_time(self.result)

    # -- one workload -------------------------------------------------------------------

    def run_workload(self, name, cmd, tools, slow_runs=None):
        """Alternates the tools over self.runs rounds; returns {tool: [seconds]}."""
        times = {t: [] for t, _ in tools}
        for i in range(self.runs):
            for tname, fn in tools:
                if tname in self.skipped:
                    continue
                if slow_runs and tname in slow_runs and i >= slow_runs[tname]:
                    continue
                try:
                    times[tname].append(fn(cmd))
                except Skip as e:
                    why = " ".join(str(e).split())
                    self.skipped[tname] = why
                    self.notes.append(f"skipped {why}")
        return times, self.skipped


def fmt_row(cols, widths):
    return "  ".join(str(c).ljust(w) for c, w in zip(cols, widths))


def print_table(header, rows):
    """The results as aligned columns under a header (shared with bench/offcpu.py)."""
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    print(fmt_row(header, widths))
    print(fmt_row(["-" * w for w in widths], widths))
    for r in rows:
        print(fmt_row(r, widths))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=7, help="rounds per workload (default 7)")
    ap.add_argument("--quick", action="store_true", help="smaller workloads, 3 rounds")
    ap.add_argument("--storm", type=int, default=1_000_000, help="getppid calls in the storm")
    args = ap.parse_args()
    if args.quick:
        args.runs = 3
        args.storm = 500_000
    if not shutil.which("gcc"):
        sys.exit("bench/syscalls.py needs gcc for the storm workload and the timing wrapper")
    if os.geteuid() != 0:
        print("note: not root: denet's eBPF collector, perf trace and syscount will likely "
              "be skipped", file=sys.stderr)

    tmp = tempfile.mkdtemp(prefix="denet-bench-")
    shm = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else tmp
    try:
        b = Bench(tmp, args.runs)
        storm = build(tmp, "storm", STORM_C)
        src = os.path.join(tmp, "stdlib")
        libdir = os.path.dirname(os.__file__)
        for pkg in ("email", "json", "http", "xml", "asyncio", "unittest", "logging",
                    "importlib", "concurrent"):
            if os.path.isdir(os.path.join(libdir, pkg)):
                shutil.copytree(os.path.join(libdir, pkg), os.path.join(src, pkg),
                                ignore=shutil.ignore_patterns("__pycache__"))
        tree = "/usr/include" if os.path.isdir("/usr/include") else libdir
        tarball = os.path.join(shm, f"denet-bench-{os.getpid()}.tar")
        python = shutil.which("python3") or sys.executable
        workloads = [
            ("storm", [storm, str(args.storm)]),
            ("tar", ["tar", "-cf", tarball, "-C", os.path.dirname(tree),
                     os.path.basename(tree)]),
            ("compileall", [python, "-m", "compileall", "-q", "-f", src]),
        ]
        tools = [("unmonitored", b.unmonitored), ("denet", b.denet), ("strace -c -f", b.strace),
                 ("perf trace -s", b.perf_trace), ("syscount -p", b.syscount)]
        # strace costs tens of times the storm: fewer rounds of it there
        slow = {"strace -c -f": 3, "perf trace -s": 3}

        rows = []
        for name, cmd in workloads:
            print(f"running {name} ...", file=sys.stderr, flush=True)
            b.unmonitored(cmd)  # warm the page cache
            times, skipped = b.run_workload(name, cmd, tools,
                                            slow if name == "storm" else None)
            base = statistics.median(times["unmonitored"])
            for tname, _ in tools:
                if tname in skipped or not times[tname]:
                    rows.append((name, tname, "-", "skipped"))
                    continue
                med = statistics.median(times[tname])
                rows.append((name, tname, f"{med:.3f}", f"{med / base:.2f}x"))
            if name == "storm" and "denet" not in skipped and times["denet"]:
                got = next((t["count"] for t in b.last_denet["top_syscalls"]
                            if t["name"] == "getppid"), 0)
                b.notes.append(f"storm: denet counted {got} getppid of {args.storm} "
                               f"({'exact' if got == args.storm else 'MISMATCH'})")
        if os.path.exists(tarball):
            os.unlink(tarball)

        print_table(("workload", "tool", "median s", "vs unmonitored"), rows)
        print(f"\n{args.runs} rounds (strace and perf trace: 3 on the storm), "
              f"{os.cpu_count()} CPUs, kernel {os.uname().release}")
        for n in dict.fromkeys(b.notes):
            print("note:", n)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
