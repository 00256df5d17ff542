"""With eBPF, one BPF task-iterator read replaces the per-process /proc files. Its
numbers are checked against /proc as this test reads it itself, and the test makes sure
the iterator really produced them: a silent fall-back to /proc would otherwise compare
/proc with /proc."""
import subprocess
import sys
import time

from conftest import ebpf_monitor, py_cmd

WORKLOAD = """
    import os, sys, threading, time
    b = bytearray(64 << 20)
    for i in range(0, len(b), 4096):
        b[i] = 1
    with open(sys.argv[1], "wb") as f:
        f.write(os.urandom(4 << 20))
        f.flush()
        os.fsync(f.fileno())
    open(sys.argv[1], "rb").read()
    ev = threading.Event()
    ts = [threading.Thread(target=ev.wait) for _ in range(3)]
    for t in ts: t.start()
    os.write(1, b"ready\\n")  # one write: the two children share the pipe
    sys.stdin.read()
    ev.set()
"""


def read_proc(pid):
    """The figures of one process as /proc gives them (since it started)."""
    with open(f"/proc/{pid}/status") as f:
        status = {l.split(":")[0]: l.split()[1] for l in f if l.split()[1:]}
    with open(f"/proc/{pid}/io") as f:
        io = {l.split(":")[0]: int(l.split()[1]) for l in f}
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read().rsplit(")", 1)[1].split()
    return {
        "thread_count": int(status["Threads"]),
        "mem_vms_kb": int(status["VmSize"]),
        "mem_rss_kb": int(status["VmRSS"]),
        "syscall_read_bytes": io["rchar"],
        "syscall_write_bytes": io["wchar"],
        "disk_read_bytes": io["read_bytes"],
        "disk_write_bytes": io["write_bytes"],
        "page_faults_cached": int(stat[7]),   # minflt (field 10)
        "page_faults_disk": int(stat[9]),     # majflt (field 12)
    }


EXACT = ("thread_count", "mem_vms_kb", "syscall_read_bytes", "syscall_write_bytes",
         "disk_read_bytes", "disk_write_bytes", "page_faults_disk")


def sample(pid, iterator, monkeypatch):
    """One sample through the iterator, or through /proc; and what the monitor says it used."""
    if not iterator:
        monkeypatch.setenv("DENET_NO_TASK_ITER", "1")
    mon = ebpf_monitor(pid, since_process_start=True)
    monkeypatch.delenv("DENET_NO_TASK_ITER", raising=False)
    before = mon._debug()
    s = mon.sample_once()
    after = mon._debug()
    mon.stop()
    return s, before, after


def test_iterator_numbers_are_those_of_proc(require_ebpf, tmp_path, monkeypatch):
    child = py_cmd(WORKLOAD)
    parent = ("import subprocess, sys\n"
              f"ps = [subprocess.Popen({child!r} + [{str(tmp_path)!r} + '/f%d' % i]) "
              "for i in range(2)]\n"
              "[q.wait() for q in ps]\n")
    p = subprocess.Popen([sys.executable, "-c", parent],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline() == "ready\n" and p.stdout.readline() == "ready\n"
        a, dbg0, dbg1 = sample(p.pid, True, monkeypatch)
        # the iterator loaded, and this very sample was read through it
        assert dbg0["task_iter"] is True and dbg0["task_iter_error"] is None, dbg0
        assert dbg1["task_iter_collections"] == dbg0["task_iter_collections"] + 1, (dbg0, dbg1)
        b, off0, off1 = sample(p.pid, False, monkeypatch)
        assert off0["task_iter"] is False and "DENET_NO_TASK_ITER" in off0["task_iter_error"]
        assert off1["task_iter_collections"] == 0
        # /proc as this test reads it, right after the samples (the workload is idle)
        truth = {c["pid"]: read_proc(c["pid"]) for c in a["children"]}
        try:
            with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
                thp = "[always]" in f.read()
        except OSError:
            thp = False
        on_tmpfs = subprocess.run(["stat", "-f", "-c", "%T", str(tmp_path)], capture_output=True,
                                  text=True).stdout.strip() == "tmpfs"
        assert a["aggregated"]["process_count"] == b["aggregated"]["process_count"] == 3
        assert len(truth) == 2
        for via in (a, b):
            got = {c["pid"]: c["metrics"] for c in via["children"]}
            assert got.keys() == truth.keys()
            for pid, want in truth.items():
                x = got[pid]
                for k in EXACT:
                    assert x[k] == want[k], (k, x[k], want[k], via is a)
                assert x["thread_count"] == 4
                # the 4 MiB written reach a disk unless the files are on tmpfs (the qemu
                # guests of `make test-kernels`), where nothing is written to a device
                assert x["disk_write_bytes"] >= (0 if on_tmpfs else 4 << 20)
                assert x["syscall_read_bytes"] >= 4 << 20
                assert abs(x["mem_rss_kb"] - want["mem_rss_kb"]) <= 0.02 * want["mem_rss_kb"]
                assert x["mem_rss_kb"] >= 64 * 1024
                assert want["page_faults_cached"] - 50 <= x["page_faults_cached"] <= want["page_faults_cached"]
                # the 64 MiB it touched: a fault per 4 KiB page, or per 2 MiB where the
                # kernel backs it with transparent huge pages (Debian's 6.1 and 6.12)
                assert x["page_faults_cached"] >= (64 * 256 if not thp else 32)
    finally:
        p.stdin.close()
        p.wait(timeout=30)


def test_monitor_says_when_the_iterator_is_off(require_ebpf, monkeypatch):
    monkeypatch.setenv("DENET_NO_TASK_ITER", "1")
    mon = ebpf_monitor(["sleep", "0.2"])
    d = mon._debug()
    assert d["task_iter"] is False and "DENET_NO_TASK_ITER" in d["task_iter_error"]
    assert mon.run() == 0
    assert mon._debug()["task_iter_collections"] == 0
    monkeypatch.delenv("DENET_NO_TASK_ITER")
    mon = ebpf_monitor(["sleep", "0.2"], base_interval_ms=20)
    assert mon._debug()["task_iter"] is True
    assert mon.run() == 0
    d = mon._debug()
    assert d["task_iter_collections"] == d["samples_collected"] >= 3


# A parent that starts and stops children on request: "spawn" starts one that waits
# with four threads (its pid comes back), "stop PID" ends it and reaps it.
SPAWNER = """
    import subprocess, sys
    kid = [sys.executable, "-c", "import sys, threading\\n"
           "ev = threading.Event()\\n"
           "ts = [threading.Thread(target=ev.wait) for _ in range(3)]\\n"
           "[t.start() for t in ts]\\n"
           "print('up', flush=True)\\n"
           "sys.stdin.read()\\n"
           "ev.set()\\n"]
    kids = {}
    for line in sys.stdin:
        cmd = line.split()
        if cmd[0] == "spawn":
            k = subprocess.Popen(kid, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            assert k.stdout.readline() == "up\\n"
            kids[k.pid] = k
            print(k.pid, flush=True)
        elif cmd[0] == "stop":
            k = kids.pop(int(cmd[1]))
            k.stdin.close()
            k.wait()
            print("stopped", flush=True)
"""


def kernel_at_least(major, minor):
    import os
    release = os.uname().release.split(".")
    return (int(release[0]), int(release[1].split("-")[0])) >= (major, minor)


def start_spawner():
    """The SPAWNER process and a function that sends it a line and returns its answer."""
    p = subprocess.Popen(py_cmd(SPAWNER), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         text=True)

    def ask(line):
        p.stdin.write(line + "\n")
        p.stdin.flush()
        return p.stdout.readline().strip()

    return p, ask


def check_kids(s, kids, nprocs):
    """Sample s holds the spawner and exactly its children kids, with /proc's figures
    (the children wait: their figures do not move)."""
    assert s["aggregated"]["process_count"] == nprocs
    got = {c["pid"]: c["metrics"] for c in s["children"]}
    assert sorted(got) == sorted(kids)
    for pid in kids:
        want = read_proc(pid)
        for k in ("thread_count", "mem_vms_kb", "syscall_read_bytes", "syscall_write_bytes",
                  "page_faults_disk"):
            assert got[pid][k] == want[k], (k, got[pid][k], want[k])
        assert got[pid]["thread_count"] == 4


def test_a_small_tree_is_read_by_an_iterator_per_process(require_ebpf, monkeypatch):
    """A tree of a few processes is read through an iterator per process (Linux 6.1+)
    instead of a walk over every task of the system, while no process joined it since
    the read before; its figures are those of /proc either way, and a process that
    joins or leaves is seen at the next sample."""
    per_process = kernel_at_least(6, 1)
    p, ask = start_spawner()
    try:
        kids = [int(ask("spawn")) for _ in range(2)]
        mon = ebpf_monitor(p.pid, since_process_start=True)

        def sample():
            s = mon.sample_once()
            return s, mon._debug()["task_iter_per_process"]

        s1, n1 = sample()
        assert n1 == 0  # the first read walks every task
        s2, n2 = sample()
        assert n2 == (1 if per_process else 0)
        for s in (s1, s2):
            check_kids(s, kids, 3)
        # a process joins: the next read walks every task, and finds it
        kids.append(int(ask("spawn")))
        s3, n3 = sample()
        assert n3 == n2 and s3["aggregated"]["process_count"] == 4
        assert sorted(c["pid"] for c in s3["children"]) == sorted(kids)
        s4, n4 = sample()
        assert n4 == n3 + (1 if per_process else 0) and s4["aggregated"]["process_count"] == 4
        # one leaves: read process by process, it is gone
        assert ask(f"stop {kids[0]}") == "stopped"
        s5, n5 = sample()
        assert n5 == n4 + (1 if per_process else 0)
        assert s5["aggregated"]["process_count"] == 3
        assert sorted(c["pid"] for c in s5["children"]) == sorted(kids[1:])
        mon.stop()
        # DENET_ITER_WALK_ALL: always the whole walk
        monkeypatch.setenv("DENET_ITER_WALK_ALL", "1")
        mon = ebpf_monitor(p.pid)
        for _ in range(3):
            s = mon.sample_once()
            assert s["aggregated"]["process_count"] == 3
        assert mon._debug()["task_iter_per_process"] == 0
        mon.stop()
    finally:
        p.stdin.close()
        p.wait(timeout=30)


def test_the_walk_is_made_again_to_count_the_systems_tasks(require_ebpf, monkeypatch):
    """A tree that stays as it is is read process by process (or through /proc) from
    the task count of the last walk; the walk is made again at least every 10 s
    (DENET_TEST_WALK_EVERY_MS here), so that the count follows the system."""
    monkeypatch.setenv("DENET_TEST_WALK_EVERY_MS", "300")
    per_process = kernel_at_least(6, 1)
    p, ask = start_spawner()
    try:
        kids = [int(ask("spawn")) for _ in range(2)]
        mon = ebpf_monitor(p.pid)

        def few_reads():
            d = mon._debug()
            return d["task_iter_per_process"] + d["task_iter_proc_instead"]

        mon.sample_once()  # a walk
        assert few_reads() == 0
        # before 6.1, through /proc when the walk saw 64 tasks for each process
        few = per_process or mon._debug()["task_iter_walk_tasks"] // 64 >= 3
        mon.sample_once()
        assert few_reads() == few
        time.sleep(0.4)
        s = mon.sample_once()  # due: the walk
        assert few_reads() == few and s["aggregated"]["process_count"] == 3
        s = mon.sample_once()
        assert few_reads() == 2 * few
        assert sorted(c["pid"] for c in s["children"]) == sorted(kids)
        mon.stop()
    finally:
        p.stdin.close()
        p.wait(timeout=30)


# Threads that only wait, in a process outside the monitored tree: a host with many tasks.
BALLAST = """
    import sys, threading
    threading.stack_size(64 << 10)
    ev = threading.Event()
    for _ in range(int(sys.argv[1])):
        threading.Thread(target=ev.wait, daemon=True).start()
    print("up", flush=True)
    sys.stdin.read()
"""


def start_busy_host(nkids):
    """A process with 1,500 waiting threads outside the tree (a busy host), then the
    SPAWNER with nkids children: (ballast, spawner, ask, the children's pids)."""
    ballast = subprocess.Popen(py_cmd(BALLAST) + ["1500"], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
    assert ballast.stdout.readline() == "up\n"
    p, ask = start_spawner()
    return ballast, p, ask, [int(ask("spawn")) for _ in range(nkids)]


def pids_limit(walk_tasks):
    """How many processes a tree may have to be read one by one (csrc/ebpf/procstat.h):
    one for every 32 tasks the walk visited, at least 4, at most 128."""
    return min(128, max(4, walk_tasks // 32))


def test_a_tree_on_a_busy_host_is_read_process_by_process(require_ebpf):
    """The walk visits every task of the system, in the tree or not; on a host with
    thousands of tasks a tree of a dozen processes costs far less read one by one. The
    walk counts the tasks it visits, and a tree with at most one process for every 32 of
    them is read process by process; its figures are those of /proc all the same."""
    per_process = kernel_at_least(6, 1)
    ballast, p, ask, kids = start_busy_host(12)
    try:
        mon = ebpf_monitor(p.pid, since_process_start=True)
        s1 = mon.sample_once()  # the first read walks every task
        d1 = mon._debug()
        assert d1["task_iter_per_process"] == 0
        # the 1,500 threads and this test's own tasks at least, and no more than the
        # system has (the kernel's count of its threads, 4th field of loadavg)
        with open("/proc/loadavg") as f:
            threads = int(f.read().split()[3].split("/")[1])
        assert 1500 < d1["task_iter_walk_tasks"] <= threads + 50, (d1, threads)
        assert pids_limit(d1["task_iter_walk_tasks"]) >= 13
        s2 = mon.sample_once()
        d2 = mon._debug()
        assert d2["task_iter_per_process"] == (1 if per_process else 0), d2
        assert d2["task_iter_walk_tasks"] == d1["task_iter_walk_tasks"]  # no walk
        for s in (s1, s2):
            check_kids(s, kids, 13)
        # the host's tasks go: the next walk (a process joined) counts fewer, and the
        # tree is read process by process only if the rule still allows 14 processes
        ballast.stdin.close()
        ballast.wait(timeout=30)
        kids.append(int(ask("spawn")))
        s3, d3 = mon.sample_once(), mon._debug()
        assert d3["task_iter_per_process"] == d2["task_iter_per_process"]
        assert d3["task_iter_walk_tasks"] < d1["task_iter_walk_tasks"] - 1400, (d1, d3)
        s4, d4 = mon.sample_once(), mon._debug()
        few = per_process and pids_limit(d3["task_iter_walk_tasks"]) >= 14
        assert d4["task_iter_per_process"] == d3["task_iter_per_process"] + few, (d3, d4)
        for s in (s3, s4):
            assert s["aggregated"]["process_count"] == 14
            assert sorted(c["pid"] for c in s["children"]) == sorted(kids)
        mon.stop()
    finally:
        if ballast.poll() is None:
            ballast.kill()
        p.stdin.close()
        p.wait(timeout=60)


def test_without_per_process_iterators_a_small_tree_is_read_through_proc(require_ebpf,
                                                                         monkeypatch):
    """Before Linux 6.1 (DENET_TEST_NO_PID_ITER: as there) a tree is read by the walk
    or through /proc: through /proc while it has at most one process for every 64 tasks
    the last walk visited, so that a busy host's walk is not paid for a small tree."""
    monkeypatch.setenv("DENET_TEST_NO_PID_ITER", "1")
    ballast, p, ask, kids = start_busy_host(12)
    try:
        mon = ebpf_monitor(p.pid, since_process_start=True)
        s1, d1 = mon.sample_once(), mon._debug()
        assert d1["task_iter_collections"] == 1 and d1["task_iter_proc_instead"] == 0, d1
        assert d1["task_iter_walk_tasks"] // 64 >= 13, d1
        s2, d2 = mon.sample_once(), mon._debug()
        # read through /proc: not through the iterator, and never process by process
        assert d2["task_iter_collections"] == 1 and d2["task_iter_proc_instead"] == 1, d2
        assert d2["task_iter_per_process"] == 0
        for s in (s1, s2):
            check_kids(s, kids, 13)
        # a process joins: walked again, and seen
        kids.append(int(ask("spawn")))
        s3, d3 = mon.sample_once(), mon._debug()
        assert d3["task_iter_collections"] == 2 and d3["task_iter_proc_instead"] == 1, d3
        check_kids(s3, kids, 14)
        s4, d4 = mon.sample_once(), mon._debug()
        assert d4["task_iter_proc_instead"] == 2, d4
        check_kids(s4, kids, 14)
        mon.stop()
    finally:
        ballast.kill()
        p.stdin.close()
        p.wait(timeout=60)
