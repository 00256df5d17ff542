"""What one tree sample costs: denet in each mode next to psutil doing the same reads and
next to floors measured in the same run, for idle and for active trees, with and without
an output file.

The tree: a small C program (built here with gcc) and its N-1 children, N = 1, 10, 50,
200. Every process of the tree blocks on a pipe of its own.
- idle: nothing is sent; the tree sleeps the whole time.
- active: before every timed call, of every tool, the bench sends the tree a byte: each
  of its processes wakes, makes 20 getppid() calls, burns a little CPU (10,000 multiply-adds,
  about 10 µs) and goes back to sleep, and the call is timed once all of them have. So
  every process ran since the last sample, whichever tool took it; the wake-up itself is
  not timed.

Tools, each timed per sample:
- psutil: children(recursive=True) plus cpu_percent(), memory_info(), io_counters() and
  num_threads() of every process (Process objects are reused between rounds, as denet
  keeps its files open).
- denet /proc: ProcessMonitor.from_pid(root).sample_once(), the default and the only way
  without privilege: CPU, memory, I/O, faults, threads and context switches of every
  process, the tree's shape, and the sample built as a dict.
- denet eBPF (root): the same with enable_ebpf=True (its defaults: syscall counts and
  off-CPU figures in every sample), where one read of a BPF task iterator gives the tree.
- each denet mode again with output_file= (JSON lines): the sample also written; and again
  with store_in_memory=True (the default; the others are measured without): the sample
  also kept, as get_samples() returns them.
Floors:
- pread: one pread() of /proc/PID/stat per process of the tree, files kept open, nothing
  parsed (a C helper, timed inside itself): the least a /proc reader can do.
- dicts: building one 15-field dict per process in Python: the least it costs to hand a
  sample of the tree to Python as dicts.
- BPF iterator (root): one read of a BPF task iterator whose program does nothing for
  each of the system's tasks (a C helper with libbpf, timed inside itself): the walk
  every task-iterator read pays, whatever it emits.
The /proc floor is pread + dicts, the eBPF floor BPF iterator + dicts.

Within each of 15 rounds the tools take turns call by call, so that machine noise and
cold caches hit all alike; each figure is the median of the rounds' means. The tables give
wall-clock µs per sample and, in brackets, per process; "vs psutil" is how many times
faster than psutil, "vs floor" how many times the floor (which writes no file and keeps
nothing). What the output file adds, and what keeping the samples adds, is the
difference of the sampling thread's CPU time with and without it, round by round (less
noisy than wall time on a shared machine); the files go to tmpfs (/dev/shm) when there
is one, so that a disk's writeback is not counted.

--host-threads N first starts a process (outside every tree) with N threads that only
wait, so that the host has thousands of tasks as a desktop or a busy server does: the
eBPF floor, a walk over every task, grows with them, while denet reads a tree that has
at most one process for every 32 tasks of the system process by process instead.

Every tree is ended before the bench exits, on an error or Ctrl-C too: the bench closes
the tree's control pipe (the tree exits and reaps its children), then kills what is left;
each process of a tree also dies with its parent (PR_SET_PDEATHSIG).

    python3 bench/sampling.py [--rounds N] [--sizes 1,10,50,200] [--host-threads N]
"""
import argparse
import os
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

import denet

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import syscalls as sysbench  # noqa: E402  (build, print_table)

try:
    import psutil
except ImportError:  # pragma: no cover
    psutil = None

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# tree N CTL_R ANS_W PARENT: this process and N-1 children, each blocked on a pipe of its
# own. For each byte on CTL_R every process of the tree runs once (work()), and the root
# answers a byte on ANS_W once all have. EOF on CTL_R ends the tree (the root closes the
# children's pipes and reaps them); so does the death of PARENT (the bench) or of the root.
TREE_C = r"""
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile unsigned long sink;

static void work(void)
{
    for (int i = 0; i < 20; i++)
        syscall(SYS_getppid);
    for (unsigned long i = 0; i < 10000; i++)
        sink += i * i;
}

static void die_with(pid_t parent)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(1);
}

int main(int argc, char **argv)
{
    if (argc != 5)
        return 2;
    int n = atoi(argv[1]), ctl_r = atoi(argv[2]), ans_w = atoi(argv[3]);
    die_with((pid_t)atoi(argv[4]));
    pid_t root = getpid();
    int done[2];
    int *go = calloc(n, sizeof *go);
    if (!go || pipe(done))
        return 1;
    for (int i = 1; i < n; i++) {
        int p[2];
        if (pipe(p))
            return 1;
        pid_t pid = fork();
        if (pid < 0)
            return 1;
        if (pid == 0) {
            die_with(root);
            close(p[1]);
            close(done[0]);
            close(ctl_r);
            close(ans_w);
            for (int j = 1; j < i; j++)
                close(go[j]);
            char c;
            while (read(p[0], &c, 1) == 1) {
                work();
                if (write(done[1], "d", 1) != 1)
                    _exit(1);
            }
            _exit(0);
        }
        close(p[0]);
        go[i] = p[1];
    }
    close(done[1]);
    if (write(ans_w, "r", 1) != 1)
        return 1;
    char c, buf[256];
    while (read(ctl_r, &c, 1) == 1) {
        for (int i = 1; i < n; i++)
            if (write(go[i], "g", 1) != 1)
                return 1;
        work();
        for (int got = 1; got < n;) {
            size_t want = (size_t)(n - got) < sizeof buf ? (size_t)(n - got) : sizeof buf;
            ssize_t k = read(done[0], buf, want);
            if (k <= 0)
                return 1;
            got += (int)k;
        }
        if (write(ans_w, "d", 1) != 1)
            return 1;
    }
    for (int i = 1; i < n; i++)
        close(go[i]);
    while (wait(NULL) > 0)
        ;
    return 0;
}
"""

# The helpers' protocol: "ready" once set up; then for each line N on stdin, N reads of
# the floor and a line with the nanoseconds they took (CLOCK_MONOTONIC).
HELPER_LOOP = r"""
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
static double now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}
static int serve(int (*once)(void))
{
    char line[64];
    printf("ready\n");
    fflush(stdout);
    while (fgets(line, sizeof line, stdin)) {
        long reps = atol(line);
        double t0 = now_ns();
        for (long r = 0; r < reps; r++)
            if (once())
                return 1;
        printf("%.0f\n", now_ns() - t0);
        fflush(stdout);
    }
    return 0;
}
"""

# statfloor PID...: one pread() of /proc/PID/stat per process, files opened once.
# --host-threads: N threads that wait, 64 KB stacks; "ready" once they all run.
BALLAST_C = r"""
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
static void *wait_forever(void *arg) { (void)arg; for (;;) pause(); return NULL; }
int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 0;
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setstacksize(&a, 64 << 10);
    for (int i = 0; i < n; i++) {
        pthread_t t;
        if (pthread_create(&t, &a, wait_forever, NULL) != 0) { perror("pthread_create"); return 1; }
    }
    printf("ready\n");
    fflush(stdout);
    char c;
    while (read(0, &c, 1) > 0) {}
    return 0;
}
"""

STAT_FLOOR_C = HELPER_LOOP + r"""
#include <fcntl.h>
#include <unistd.h>
static int *fds, nfds;
static int once(void)
{
    char buf[4096];
    for (int i = 0; i < nfds; i++)
        if (pread(fds[i], buf, sizeof buf, 0) <= 0)
            return 1;
    return 0;
}
int main(int argc, char **argv)
{
    nfds = argc - 1;
    fds = calloc(nfds ? nfds : 1, sizeof *fds);
    for (int i = 0; i < nfds; i++) {
        char path[64];
        snprintf(path, sizeof path, "/proc/%s/stat", argv[i + 1]);
        if ((fds[i] = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
            perror(path);
            return 1;
        }
    }
    return serve(once);
}
"""

# A task iterator whose program does nothing: each read walks every task of the system.
ITER_BPF_C = r"""
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
char LICENSE[] SEC("license") = "GPL";
SEC("iter/task")
int walk(struct bpf_iter__task *ctx)
{
    return 0;
}
"""

# iterfloor OBJ: loads OBJ's iterator; one read = create the iterator fd, read to EOF.
ITER_FLOOR_C = HELPER_LOOP + r"""
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <unistd.h>
static int link_fd;
static int once(void)
{
    char buf[4096];
    int fd = bpf_iter_create(link_fd);
    if (fd < 0)
        return 1;
    while (read(fd, buf, sizeof buf) > 0)
        ;
    close(fd);
    return 0;
}
int main(int argc, char **argv)
{
    struct bpf_object *obj = bpf_object__open_file(argv[1], NULL);
    if (!obj || bpf_object__load(obj)) {
        fprintf(stderr, "cannot load %s\n", argv[1]);
        return 1;
    }
    struct bpf_link *link =
        bpf_program__attach_iter(bpf_object__find_program_by_name(obj, "walk"), NULL);
    if (!link) {
        fprintf(stderr, "cannot attach the task iterator\n");
        return 1;
    }
    link_fd = bpf_link__fd(link);
    return serve(once);
}
"""

class Tree:
    """N processes (tree.c and its children), idle until poked."""

    def __init__(self, exe, n):
        self.root = None
        self.pids = []
        ctl_r, self.ctl_w = os.pipe()
        self.ans_r, ans_w = os.pipe()
        try:
            self.root = subprocess.Popen([exe, str(n), str(ctl_r), str(ans_w), str(os.getpid())],
                                         pass_fds=(ctl_r, ans_w))
        finally:
            os.close(ctl_r)
            os.close(ans_w)
        try:
            if self._answer(60) != b"r":
                raise RuntimeError(f"the tree of {n} did not start")
            with open(f"/proc/{self.root.pid}/task/{self.root.pid}/children") as f:
                self.pids = [self.root.pid] + [int(p) for p in f.read().split()]
            if len(self.pids) != n:
                raise RuntimeError(f"the tree has {len(self.pids)} processes, not {n}")
        except BaseException:
            self.end()
            raise

    def _answer(self, timeout):
        if not select.select([self.ans_r], [], [], timeout)[0]:
            return b""
        return os.read(self.ans_r, 1)

    def poke(self):
        """Every process of the tree runs once; returns when all have."""
        os.write(self.ctl_w, b"g")
        if self._answer(60) != b"d":
            raise RuntimeError("the tree stopped answering")

    def end(self):
        """Closes the control pipe (the root ends its children and reaps them), then kills
        whatever is left."""
        if self.ctl_w >= 0:
            os.close(self.ctl_w)
            self.ctl_w = -1
        if self.root is None:
            return
        try:
            self.root.wait(timeout=10)
        except subprocess.TimeoutExpired:
            for pid in self.pids[1:]:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.root.kill()
            self.root.wait()
        if self.ans_r >= 0:
            os.close(self.ans_r)
            self.ans_r = -1


class Helper:
    """A floor helper: it times its own reads (see HELPER_LOOP)."""

    def __init__(self, argv):
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        if self.p.stdout.readline().strip() != "ready":
            self.p.kill()
            _, err = self.p.communicate()
            raise RuntimeError(err.strip() or f"{argv[0]} did not start")

    def seconds(self, reps):
        self.p.stdin.write(f"{reps}\n")
        self.p.stdin.flush()
        return int(self.p.stdout.readline()) / 1e9

    def close(self):
        self.p.kill()
        self.p.wait()


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


def dict_floor(n):
    """Builds n 15-field dicts of fresh numbers, as a sample of n processes needs."""
    rows = [tuple(range(100000 * (i + 1), 100000 * (i + 1) + 15)) for i in range(n)]

    def build():
        return [{"ts_ms": a + 1, "cpu_usage": b * 0.5, "mem_rss_kb": c + 1, "mem_vms_kb": d + 1,
                 "disk_read_bytes": e + 1, "disk_write_bytes": f + 1,
                 "syscall_read_bytes": g + 1, "syscall_write_bytes": h + 1,
                 "page_faults_cached": i + 1, "page_faults_disk": j + 1, "thread_count": k + 1,
                 "uptime_secs": l + 1, "cpu_core": m + 1, "ctx_switches_voluntary": o + 1,
                 "ctx_switches_involuntary": p + 1}
                for a, b, c, d, e, f, g, h, i, j, k, l, m, o, p in rows]

    assert len(build()[0]) == 15
    return build


def build_iter_floor(tmp):
    """The BPF iterator floor's helper and object, or raises sysbench.Skip saying why."""
    if os.geteuid() != 0:
        raise sysbench.Skip("not root")
    clang = shutil.which("clang")
    arch = {"x86_64": "x86", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine)
    vmlinux = os.path.join(REPO, "bpf", "vmlinux", arch)
    if not clang or not os.path.exists(os.path.join(vmlinux, "vmlinux.h")):
        raise sysbench.Skip(f"needs clang and bpf/vmlinux/{arch}/vmlinux.h")
    src, obj = os.path.join(tmp, "iter.bpf.c"), os.path.join(tmp, "iter.bpf.o")
    with open(src, "w") as f:
        f.write(ITER_BPF_C)
    r = subprocess.run([clang, "-g", "-O2", "-target", "bpf", "-I", vmlinux, "-c", src, "-o", obj],
                       capture_output=True, text=True)
    if r.returncode:
        raise sysbench.Skip(f"clang: {r.stderr.strip()[:200]}")
    try:
        exe = sysbench.build(tmp, "iterfloor", ITER_FLOOR_C, libs=["-lbpf"])
    except subprocess.CalledProcessError:
        raise sysbench.Skip("could not build the libbpf helper (libbpf-dev)")
    return [exe, obj]


def system_tasks():
    n = 0
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                n += len(os.listdir(f"/proc/{p}/task"))
            except OSError:
                pass
    return n


def us(seconds, n):
    v = seconds * 1e6
    return f"{v:.0f} ({v / n:.1f})" if n > 1 else f"{v:.0f}"


def ratio(a, b):
    return f"{a / b:.1f}x" if a and b else "-"


def measure(tree, n, tools, rounds, active):
    """({tool: median over rounds of its mean wall seconds per sample}, {tool: [its mean
    CPU seconds per sample, round by round]}), CPU time being the calling thread's (for
    the helpers, their own wall time). Within a round the tools take turns call by call,
    so that noise and cold caches hit all alike; psutil, a hundred times slower, takes a
    tenth of the calls."""
    poke = tree.poke if active else None
    calls = max(5, (400 if active else 1000) // n)
    per_round = {name: ([], []) for name in tools}
    for _ in range(rounds):
        wall = dict.fromkeys(tools, 0.0)
        cpu = dict.fromkeys(tools, 0.0)
        count = dict.fromkeys(tools, 0)
        for i in range(calls):
            for name, (kind, obj) in tools.items():
                if name == "psutil" and i >= max(2, calls // 10):
                    continue
                if poke:
                    poke()
                if kind == "helper":
                    w = c = obj.seconds(1)
                else:
                    c0 = time.thread_time()  # a system call: kept out of the wall time
                    t0 = time.perf_counter()
                    obj()
                    w = time.perf_counter() - t0
                    c = time.thread_time() - c0
                wall[name] += w
                cpu[name] += c
                count[name] += 1
        for name in tools:
            per_round[name][0].append(wall[name] / count[name])
            per_round[name][1].append(cpu[name] / count[name])
    return ({name: statistics.median(w) for name, (w, _) in per_round.items()},
            {name: c for name, (_, c) in per_round.items()})


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=15, help="alternating rounds (default 15)")
    ap.add_argument("--sizes", default="1,10,50,200", help="tree sizes (default 1,10,50,200)")
    ap.add_argument("--host-threads", type=int, default=0, metavar="N",
                    help="first start N waiting threads outside the trees (a busy host)")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if psutil is None:
        print("psutil is not installed (apt-get install python3-psutil); nothing to compare")
        return 1
    if not shutil.which("gcc"):
        sys.exit("bench/sampling.py needs gcc for its tree and floor helpers")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up as on Ctrl-C
    ebpf, why = denet.ebpf_available()
    modes = [("/proc", False)] + ([("eBPF", True)] if ebpf else [])
    tmp = tempfile.mkdtemp(prefix="denet-bench-")
    # Output files on tmpfs when there is one: the disk's writeback is not denet's cost.
    shm = os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK)
    out_tmp = tempfile.mkdtemp(prefix="denet-bench-", dir="/dev/shm") if shm else tmp
    out_dir = "tmpfs (/dev/shm)" if shm else tmp
    results, cpu = {}, {}  # (state, n) -> what measure() returns
    tasks = {}  # n -> tasks on the system with the tree of n
    notes = []
    ballast = None
    try:
        if args.host_threads > 0:
            ballast = Helper([sysbench.build(tmp, "ballast", BALLAST_C, libs=("-pthread",)),
                              str(args.host_threads)])
        tree_exe = sysbench.build(tmp, "tree", TREE_C)
        stat_exe = sysbench.build(tmp, "statfloor", STAT_FLOOR_C)
        try:
            iter_argv = build_iter_floor(tmp) if ebpf else None
        except sysbench.Skip as e:
            iter_argv = None
            notes.append(f"BPF iterator floor omitted: {e}")
        if not ebpf:
            notes.append(f"denet eBPF mode not measured: {why}")
        for n in sizes:
            print(f"measuring trees of {n} ...", file=sys.stderr, flush=True)
            tree, helpers, mons = None, [], []
            try:
                tree = Tree(tree_exe, n)
                tools = {"psutil": ("py", PsutilSampler(tree.root.pid).sample)}
                assert len(tools["psutil"][1]()) == n
                helpers.append(Helper([stat_exe] + [str(p) for p in tree.pids]))
                tools["pread"] = ("helper", helpers[-1])
                tools["dicts"] = ("py", dict_floor(n))
                if iter_argv:
                    helpers.append(Helper(iter_argv))
                    tools["iter"] = ("helper", helpers[-1])
                for name, on in modes:
                    out = os.path.join(out_tmp, f"{name.strip('/')}-{n}.jsonl")
                    for suffix, kw in (("", {}), (" + file", {"output_file": out}),
                                       (" kept", {"store_in_memory": True})):
                        kw = {"store_in_memory": False, **kw}
                        mon = denet.ProcessMonitor.from_pid(tree.root.pid, enable_ebpf=on,
                                                            quiet=True, **kw)
                        mons.append(mon)
                        s = mon.sample_once()
                        assert s["aggregated"]["process_count"] == n, (name, s["aggregated"])
                        if on:
                            assert mon.ebpf_error is None, mon.ebpf_error
                        tools[name + suffix] = ("py", mon.sample_once)
                tasks[n] = system_tasks()
                for state in ("idle", "active"):
                    results[(state, n)], cpu[(state, n)] = measure(tree, n, tools, args.rounds,
                                                                   state == "active")
            finally:
                for mon in mons:
                    mon.stop()
                for h in helpers:
                    h.close()
                if tree:
                    tree.end()
    finally:
        if ballast:
            ballast.close()
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(out_tmp, ignore_errors=True)

    print(f"denet {denet.__version__}, psutil {psutil.__version__}: one tree sample, median of "
          f"{args.rounds} alternating rounds, µs per sample (µs per process); "
          f"{os.cpu_count()} CPUs, kernel {os.uname().release}"
          + (f"; {args.host_threads} waiting threads outside the trees" if ballast else ""))
    for state, title in (("idle", "idle tree (every process asleep)"),
                         ("active", "active tree (every process ran since the last sample)")):
        for suffix, what in (("", "no output file"), (" + file", "output file (JSON lines)")):
            print(f"\n{title}, {what}:")
            header = ["processes", "psutil"]
            for name, _ in modes:
                header += [f"{name} floor", f"denet {name}", "vs psutil", "vs floor"]
            rows = []
            for n in sizes:
                r = results[(state, n)]
                row = [str(n), us(r["psutil"], n)]
                for name, _ in modes:
                    read = r.get("pread" if name == "/proc" else "iter")
                    floor = read + r["dicts"] if read else None
                    d = r[name + suffix]
                    row += [us(floor, n) if floor else "-", us(d, n), ratio(r["psutil"], d),
                            ratio(d, floor)]
                rows.append(row)
            sysbench.print_table(header, rows)
    print("\nfloors, µs per sample (µs per process):")
    rows = []
    for state in ("idle", "active"):
        for n in sizes:
            r = results[(state, n)]
            rows.append([state, str(n), us(r["pread"], n), us(r["dicts"], n),
                         us(r["iter"], n) if "iter" in r else "-", str(tasks[n])])
    sysbench.print_table(["tree", "processes", "pread /proc/PID/stat", "15-field dicts",
                          "BPF task iterator", "tasks on the system"], rows)
    for suffix, what in ((" + file", "the output file adds, µs per process (the file on "
                          + out_dir + ")"),
                         (" kept", "keeping every sample in memory adds (store_in_memory=True,"
                          " the default), µs per process")):
        print(f"\nwhat {what}: the sampling thread's CPU time, the median of the rounds'"
              " differences")
        rows = []
        for state in ("idle", "active"):
            for n in sizes:
                c = cpu[(state, n)]
                rows.append([state, str(n)] + [
                    f"{statistics.median(map(float.__sub__, c[name + suffix], c[name])) * 1e6 / n:.2f}"
                    for name, _ in modes])
        sysbench.print_table(["tree", "processes"] + [f"denet {name}" for name, _ in modes], rows)
    for note in notes:
        print("note:", note)
    return 0


if __name__ == "__main__":
    sys.exit(main())
