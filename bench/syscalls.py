"""What counting every syscall of a process costs it: denet's eBPF syscall collector next to
strace -c -f, perf trace -s and libbpf-tools syscount, on the same workloads in one run.

The "floor" column is the workload with an empty BPF program attached to sys_enter
(bench/floor.bpf.c, attached as denet's counter is): the least any counter built on a BPF
program there can cost. denet's figures are also given against it ("vs floor"), and for
the storm, in nanoseconds per call: the median run's, and the median over runs of each
run's fastest tenth of the calls in CPU time (the storm times ten rounds of its calls
with CLOCK_THREAD_CPUTIME_ID), which the rest of a busy machine disturbs least.

Workloads (each a single process, so syscount -p sees all of it):
  storm       a C loop of syscall(SYS_getppid): the cheapest syscall, back to back, the
              worst case for any per-syscall tracer
  tar         tar of /usr/include into a file on /dev/shm: a syscall-heavy real program
  compileall  python3 -m compileall -f over a copy of part of the standard library

Every run goes through a small C wrapper that forks the workload, pinned to one CPU (the
last one; --cpu; this script, and so denet's sampler thread, runs on the others), and
times it from fork (or from the go signal when held) to exit, so tool start-up and tear-down (loading BPF,
perf reading symbols) are not charged to the workload; the ratio is the slowdown of the
workload itself. Runs alternate between tools so machine noise hits all alike; the table
shows the median over runs and its ratio to the unmonitored median.

Peers that cannot run here (not installed, no permission) are skipped with a note.
Needs root for denet's eBPF collector, perf trace and syscount.

    python3 bench/syscalls.py [--runs N] [--quick] [--cpu N] [--only storm]
"""
import argparse
import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

import denet

HERE = os.path.dirname(os.path.abspath(__file__))

# storm N [OUT]: N getppid calls, in ten equal rounds; with OUT, writes there the ns per
# call of the fastest round in the thread's CPU time (time the CPU spent on other work
# is not in it, and the fastest round is the one least disturbed by the rest).
STORM_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <sys/syscall.h>
static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}
int main(int argc, char **argv)
{
    long n = atol(argv[1]), round = n / 10;
    double best = 0;
    for (int r = 0; r < 10; r++) {
        double t0 = now();
        for (long i = 0; i < (r == 9 ? n - 9 * round : round); i++)
            syscall(SYS_getppid);
        double ns = (now() - t0) * 1e9 / (double)(r == 9 ? n - 9 * round : round);
        if (r == 0 || ns < best)
            best = ns;
    }
    if (argc > 2) {
        FILE *f = fopen(argv[2], "w");
        if (!f)
            return 1;
        fprintf(f, "%.1f\n", best);
        fclose(f);
    }
    return 0;
}
"""

# timeit RESULT [--hold] -- CMD...: runs CMD in a child and writes its wall time (s) to
# RESULT. With --hold the child is forked first, its pid printed on stdout, and it execs
# only after a line arrives on stdin (so a tracer can attach to that pid first). With
# DENET_BENCH_CPU=N in the environment the child runs on CPU N only.
TIMEIT_C = r"""
#define _GNU_SOURCE
#include <sched.h>
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
        const char *cpu = getenv("DENET_BENCH_CPU");
        if (cpu && *cpu) {
            cpu_set_t set;
            CPU_ZERO(&set);
            CPU_SET(atoi(cpu), &set);
            if (sched_setaffinity(0, sizeof set, &set))
                _exit(124);
        }
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

# floor OBJ: loads the BPF object, attaches its programs, says "attached" and holds them
# until its stdin closes.
FLOOR_LOADER_C = r"""
#include <stdio.h>
#include <bpf/libbpf.h>
int main(int argc, char **argv)
{
    struct bpf_object *obj = bpf_object__open_file(argv[1], NULL);
    if (!obj || bpf_object__load(obj)) {
        perror("loading the floor program");
        return 1;
    }
    struct bpf_program *prog;
    bpf_object__for_each_program(prog, obj) {
        if (!bpf_program__attach(prog)) {
            perror("attaching the floor program");
            return 1;
        }
    }
    printf("attached\n");
    fflush(stdout);
    while (getchar() != EOF)
        ;
    return 0;
}
"""


# The CPUs strace, perf trace and syscount may run on (all: set in main()).
TOOL_CPUS = set()


def anywhere():
    """preexec_fn of the peers' processes: every CPU, whatever this script is pinned to."""
    if TOOL_CPUS:
        os.sched_setaffinity(0, TOOL_CPUS)


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


class Floor:
    """An empty BPF program from bench/ (SRC), compiled as setup.py compiles bpf/*.bpf.c,
    and held attached by a small libbpf loader while a run is timed: the least any tool
    built on a program at the same hook can cost."""

    def __init__(self, tmp, src):
        self.src = src
        self.loader = self.obj = None
        self.why = ""
        clang = shutil.which("clang")
        if not clang:
            self.why = "clang is not installed"
            return
        obj = os.path.join(tmp, src.replace(".bpf.c", ".bpf.o"))
        arch = {"x86_64": "x86", "aarch64": "arm64"}.get(os.uname().machine, "x86")
        vmlinux = os.path.join(HERE, "..", "bpf", "vmlinux", arch)
        r = subprocess.run([clang, "-g", "-O2", "-target", "bpf", f"-D__TARGET_ARCH_{arch}",
                            "-Wall", "-Werror", "-I", vmlinux, "-c", os.path.join(HERE, src),
                            "-o", obj], capture_output=True, text=True)
        if r.returncode != 0:
            self.why = f"compiling {src}: {r.stderr.strip()[:200]}"
            return
        loader = os.path.join(tmp, "floor")
        try:
            self.loader = loader if os.path.exists(loader) else build(
                tmp, "floor", FLOOR_LOADER_C, libs=["-lbpf"])
        except subprocess.CalledProcessError:
            self.why = "building its loader failed (libbpf-dev?)"
            return
        self.obj = obj

    @contextlib.contextmanager
    def attached(self):
        """Holds the program attached; Skip when it cannot be."""
        if self.loader is None:
            raise Skip(f"floor: {self.why}")
        ld = subprocess.Popen([self.loader, self.obj], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if ld.stdout.readline().strip() != "attached":
            ld.stdin.close()
            why = " ".join(ld.stderr.read().split())[:200]
            ld.wait()
            raise Skip(f"floor: {why or 'the empty program did not attach'}")
        try:
            yield
        finally:
            ld.stdin.close()
            ld.wait()


class Bench:
    def __init__(self, tmp, runs):
        self.tmp = tmp
        self.runs = runs
        self.timeit = build(tmp, "timeit", TIMEIT_C)
        self.result = os.path.join(tmp, "result")
        self.storm_best = os.path.join(tmp, "storm-best")
        self.notes = []
        self.skipped = {}  # tool -> why; a tool that cannot run is not retried
        self.floor_prog = Floor(tmp, "floor.bpf.c")

    def wrapped(self, cmd, hold=False):
        return [self.timeit, self.result] + (["--hold"] if hold else []) + ["--"] + cmd

    # -- the tools: each runs cmd once and returns the workload's wall time -------------

    def unmonitored(self, cmd):
        subprocess.run(self.wrapped(cmd), check=True, stdout=subprocess.DEVNULL)
        return read_time(self.result)

    def floor(self, cmd):
        with self.floor_prog.attached():
            return self.unmonitored(cmd)

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
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                           preexec_fn=anywhere)
        if r.returncode != 0:
            raise Skip(f"strace: {r.stderr.strip()[:200]}")
        return read_time(self.result)

    def perf_trace(self, cmd):
        exe = shutil.which("perf")
        if not exe:
            raise Skip("perf trace: not installed (apt-get install linux-perf)")
        out = os.path.join(self.tmp, "perf.out")
        r = subprocess.run([exe, "trace", "-s", "-o", out, "--"] + self.wrapped(cmd),
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                           preexec_fn=anywhere)
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
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              preexec_fn=anywhere)
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
        self.best = {t: [] for t, _ in tools}  # the storm's fastest round, ns per call
        for i in range(self.runs):
            for tname, fn in tools:
                if tname in self.skipped:
                    continue
                if slow_runs and tname in slow_runs and i >= slow_runs[tname]:
                    continue
                try:
                    times[tname].append(fn(cmd))
                    if name == "storm" and os.path.exists(self.storm_best):
                        self.best[tname].append(read_time(self.storm_best))
                        os.unlink(self.storm_best)
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
    ap.add_argument("--cpu", type=int, default=(os.cpu_count() or 1) - 1,
                    help="the CPU the workloads run on (default: the last); -1: not pinned")
    ap.add_argument("--only", action="append", choices=("storm", "tar", "compileall"),
                    help="run only this workload (repeatable)")
    ap.add_argument("--tools", default=None,
                    help="comma-separated tools to run (default: all), e.g. unmonitored,floor,denet")
    args = ap.parse_args()
    if args.quick:
        args.runs = 3
        args.storm = 500_000
    if not shutil.which("gcc"):
        sys.exit("bench/syscalls.py needs gcc for the storm workload and the timing wrapper")
    if os.geteuid() != 0:
        print("note: not root: denet's eBPF collector, perf trace and syscount will likely "
              "be skipped", file=sys.stderr)

    if args.cpu >= 0:
        os.environ["DENET_BENCH_CPU"] = str(args.cpu)
        # This script, so denet's sampler thread, runs on the other CPUs. The other tools
        # run where the kernel puts them, as before: strace kept off the tracee's CPU
        # takes many times longer (every stop is a wake-up on another CPU).
        everything = os.sched_getaffinity(0)
        others = everything - {args.cpu}
        if others:
            os.sched_setaffinity(0, others)
            TOOL_CPUS.update(everything)
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
            ("storm", [storm, str(args.storm), b.storm_best]),
            ("tar", ["tar", "-cf", tarball, "-C", os.path.dirname(tree),
                     os.path.basename(tree)]),
            ("compileall", [python, "-m", "compileall", "-q", "-f", src]),
        ]
        workloads = [w for w in workloads if not args.only or w[0] in args.only]
        tools = [("unmonitored", b.unmonitored), ("floor", b.floor), ("denet", b.denet),
                 ("strace -c -f", b.strace), ("perf trace -s", b.perf_trace),
                 ("syscount -p", b.syscount)]
        if args.tools:
            keep = set(args.tools.split(","))
            tools = [t for t in tools if t[0] in keep or t[0] == "unmonitored"]
        # strace costs tens of times the storm: fewer rounds of it there
        slow = {"strace -c -f": 3, "perf trace -s": 3}

        rows = []
        for name, cmd in workloads:
            print(f"running {name} ...", file=sys.stderr, flush=True)
            b.unmonitored(cmd)  # warm the page cache
            times, skipped = b.run_workload(name, cmd, tools,
                                            slow if name == "storm" else None)
            base = statistics.median(times["unmonitored"])
            floor = statistics.median(times["floor"]) if times.get("floor") else None
            best = {t: statistics.median(v) for t, v in b.best.items() if v}
            for tname, _ in tools:
                if tname in skipped or not times[tname]:
                    rows.append((name, tname, "-", "skipped", "", "", ""))
                    continue
                med = statistics.median(times[tname])
                vs_floor = f"{med / floor:.3f}x" if floor and tname in ("floor", "denet") else ""
                per_call = f"{med / args.storm * 1e9:.0f}" if name == "storm" else ""
                fastest = ""
                if tname in best:
                    fastest = f"{best[tname]:.0f}"
                    if "floor" in best and tname != "floor":
                        d = best[tname] - best["floor"]
                        fastest += f" ({'+' if d >= 0 else '-'}{abs(d):.0f} vs floor)"
                rows.append((name, tname, f"{med:.3f}", f"{med / base:.2f}x", vs_floor,
                             per_call, fastest))
            if name == "storm" and "denet" not in skipped and times["denet"]:
                got = next((t["count"] for t in b.last_denet["top_syscalls"]
                            if t["name"] == "getppid"), 0)
                b.notes.append(f"storm: denet counted {got} getppid of {args.storm} "
                               f"({'exact' if got == args.storm else 'MISMATCH'})")
        if os.path.exists(tarball):
            os.unlink(tarball)

        print_table(("workload", "tool", "median s", "vs unmonitored", "vs floor",
                     "ns/call", "ns/call, fastest tenth (CPU)"), rows)
        print(f"\n{args.runs} rounds (strace and perf trace: 3 on the storm), "
              f"{os.cpu_count()} CPUs, workloads on "
              f"{'CPU ' + str(args.cpu) if args.cpu >= 0 else 'any CPU'}, "
              f"kernel {os.uname().release}")
        for n in dict.fromkeys(b.notes):
            print("note:", n)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
