"""With eBPF, one BPF task-iterator read replaces the per-process /proc files. Both paths
must give the same numbers for the same processes."""
import os
import subprocess
import sys
import time

import pytest

import denet
from conftest import py_cmd

WORKLOAD = """
    import os, sys, threading, time
    b = bytearray(64 << 20)
    for i in range(0, len(b), 4096):
        b[i] = 1
    with open(sys.argv[1], "wb") as f:
        f.write(os.urandom(4 << 20))
    open(sys.argv[1], "rb").read()
    ev = threading.Event()
    ts = [threading.Thread(target=ev.wait) for _ in range(3)]
    for t in ts: t.start()
    print("ready", flush=True)
    sys.stdin.read()
    ev.set()
"""


def sample(pid, iterator):
    if not iterator:
        os.environ["DENET_NO_TASK_ITER"] = "1"
    try:
        mon = denet.ProcessMonitor.from_pid(pid, enable_ebpf=True, since_process_start=True)
        return mon.sample_once()
    finally:
        os.environ.pop("DENET_NO_TASK_ITER", None)


def test_iterator_and_procfs_agree(require_ebpf, tmp_path):
    child = py_cmd(WORKLOAD)
    parent = ("import subprocess, sys\n"
              f"ps = [subprocess.Popen({child!r} + [{str(tmp_path)!r} + '/f%d' % i]) "
              "for i in range(2)]\n"
              "[q.wait() for q in ps]\n")
    p = subprocess.Popen([sys.executable, "-c", parent],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline() == "ready\n" and p.stdout.readline() == "ready\n"
        time.sleep(0.2)
        a, b = sample(p.pid, True), sample(p.pid, False)
        assert a["aggregated"]["process_count"] == b["aggregated"]["process_count"] == 3
        pa = {c["pid"]: c["metrics"] for c in a["children"]}
        pb = {c["pid"]: c["metrics"] for c in b["children"]}
        assert pa.keys() == pb.keys()
        for pid in pa:
            x, y = pa[pid], pb[pid]
            for k in ("thread_count", "mem_vms_kb", "syscall_read_bytes", "syscall_write_bytes",
                      "disk_write_bytes", "disk_read_bytes", "page_faults_disk"):
                assert x[k] == y[k], (k, x[k], y[k])
            assert x["thread_count"] == 4
            assert abs(x["mem_rss_kb"] - y["mem_rss_kb"]) <= 0.02 * y["mem_rss_kb"]
            assert abs(x["page_faults_cached"] - y["page_faults_cached"]) <= 50
            assert abs(x["uptime_secs"] - y["uptime_secs"]) <= 1
    finally:
        p.stdin.close()
        p.wait(timeout=30)
