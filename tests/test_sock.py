"""Per-process network bytes (eBPF sock_send_length/sock_recv_length, Linux 6.5+).

Ground truth: the workloads move a known number of bytes (sendall of exactly 10 MiB,
fixed-size datagrams each answered by a 1-byte ack so none is lost) and report their
pids; each process then waits on a file so that it is sampled alive. The counts must
be exact, per process, in `aggregated` and in the summary after the processes exited.
"""
import os
import shutil
import socket
import subprocess
import sys
import time

import pytest

import denet

MIB = 1 << 20

COMMON = r"""
import os, socket, sys, time
go = sys.argv[1]
def hold():  # stay alive (and sampled) until the test creates the file
    deadline = time.monotonic() + 120  # a test that failed never does: do not linger
    while not os.path.exists(go) and time.monotonic() < deadline:
        time.sleep(0.01)
def report(*words):
    os.write(1, (" ".join(map(str, words)) + "\n").encode())
"""

TCP_PAIR = COMMON + r"""
N = 10 << 20
ls = socket.socket()
ls.bind(("127.0.0.1", 0))
ls.listen(1)
port = ls.getsockname()[1]
r = os.fork()
if r == 0:
    c, _ = ls.accept()
    got = 0
    while True:
        b = c.recv(1 << 16)
        if not b:
            break
        got += len(b)
    report("recv", os.getpid(), got)
    hold()
    os._exit(0)
s = os.fork()
if s == 0:
    c = socket.create_connection(("127.0.0.1", port))
    c.sendall(b"x" * N)
    c.close()
    report("send", os.getpid(), N)
    hold()
    os._exit(0)
ls.close()
os.waitpid(r, 0)
os.waitpid(s, 0)
"""

# 64 datagrams of 8 KiB from each of three sockets: unconnected (sendto) on a wildcard
# address, connected (send), unconnected bound to 127.0.0.1; each datagram is answered
# with a 1-byte ack before the next, so none is dropped.
UDP = COMMON + r"""
SIZE, COUNT = 8192, 64
rs = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
rs.bind(("127.0.0.1", 0))
addr = rs.getsockname()
r = os.fork()
if r == 0:
    got = 0
    for _ in range(3 * COUNT):
        data, peer = rs.recvfrom(65536)
        got += len(data)
        rs.sendto(b"k", peer)
    report("recv", os.getpid(), got)
    hold()
    os._exit(0)
def sender(kind):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    if kind == "connected":
        s.connect(addr)
    elif kind == "bound":
        s.bind(("127.0.0.1", 0))
    for _ in range(COUNT):
        if kind == "connected":
            s.send(b"u" * SIZE)
        else:
            s.sendto(b"u" * SIZE, addr)
        assert s.recv(16) == b"k"
    report(kind, os.getpid(), SIZE * COUNT)
    hold()
    os._exit(0)
pids = []
for kind in ("wildcard", "connected", "bound"):
    p = os.fork()
    if p == 0:
        sender(kind)
    pids.append(p)
for p in pids + [r]:
    os.waitpid(p, 0)
"""


def run_workload(tmp_path, code, nlines, **kw):
    """Starts code under a monitor with eBPF; returns (monitor, reports, go file)."""
    go = tmp_path / "go"
    script = tmp_path / "work.py"
    script.write_text(code)
    r, w = os.pipe()
    mon = denet.ProcessMonitor([sys.executable, "-S", str(script), str(go)], enable_ebpf=True,
                               stdout=w, quiet=True, base_interval_ms=50, **kw)
    os.close(w)
    assert mon.ebpf_error is None, mon.ebpf_error
    caps = mon.get_metadata()["capabilities"]
    assert caps["sock"]["available"], caps["sock"]
    mon.start()
    f = os.fdopen(r)
    reports = []
    for _ in range(nlines):
        line = f.readline()
        assert line, f"the workload ended early (exit {mon.wait(timeout=5)})"
        reports.append(line.split())
    f.close()
    return mon, reports, go


def finish(mon, go):
    go.write_text("")
    assert mon.wait(timeout=60) == 0
    mon.stop()
    return mon.get_summary()


def by_pid(sample):
    return {c["pid"]: c["metrics"] for c in sample["children"]}


def sock(m):
    return (m["sock_rx_bytes"], m["sock_tx_bytes"], m["sock_rx_bytes_remote"], m["sock_tx_bytes_remote"])


@pytest.fixture
def sock_ebpf(require_ebpf):
    ok, why = denet._denet.sock_available()
    if not ok:
        pytest.fail(f"this kernel cannot count socket bytes: {why}")


def test_tcp_10_mib_exact_per_process(sock_ebpf, tmp_path):
    mon, reports, go = run_workload(tmp_path, TCP_PAIR, 2)
    pids = {kind: int(pid) for kind, pid, _ in reports}
    s = mon.sample_once()
    kids = by_pid(s)
    # Sender: exactly 10 MiB out, nothing in; receiver the reverse. Loopback: no remote part.
    assert sock(kids[pids["send"]]) == (0, 10 * MIB, 0, 0)
    assert sock(kids[pids["recv"]]) == (10 * MIB, 0, 0, 0)
    assert sock(s["parent"]) == (0, 0, 0, 0)  # the listening socket moved no data
    assert sock(s["aggregated"]) == (10 * MIB, 10 * MIB, 0, 0)
    summary = finish(mon, go)
    # Both children exited before the summary: their traffic stays in the totals.
    assert summary["total_sock_rx_bytes"] == 10 * MIB
    assert summary["total_sock_tx_bytes"] == 10 * MIB
    assert summary["total_sock_rx_bytes_remote"] == 0
    assert summary["total_sock_tx_bytes_remote"] == 0


def test_udp_datagrams_exact(sock_ebpf, tmp_path):
    mon, reports, go = run_workload(tmp_path, UDP, 4)
    pids = {kind: int(pid) for kind, pid, _ in reports}
    s = mon.sample_once()
    kids = by_pid(s)
    # Every sender: 64 datagrams of 8 KiB out through lo (its own device note for the
    # unconnected ones, the address for the connected one), 64 one-byte acks in.
    assert sock(kids[pids["connected"]]) == (64, 64 * 8192, 0, 0)
    assert sock(kids[pids["bound"]]) == (64, 64 * 8192, 0, 0)  # bound to 127.0.0.1
    # The acks of an unconnected socket on a wildcard address arrive as linear
    # datagrams, whose device no tracepoint shows: their remote part is unknown (None),
    # never guessed; the totals stay exact.
    assert sock(kids[pids["wildcard"]]) == (64, 64 * 8192, None, 0)
    assert sock(kids[pids["recv"]]) == (3 * 64 * 8192, 3 * 64, 0, 0)
    assert sock(s["aggregated"])[2] is None  # a sum with an unknown part is unknown
    summary = finish(mon, go)
    assert summary["total_sock_tx_bytes"] == 3 * 64 * 8192 + 3 * 64
    assert summary["total_sock_rx_bytes"] == 3 * 64 * 8192 + 3 * 64
    assert summary["total_sock_tx_bytes_remote"] == 0
    assert summary["total_sock_rx_bytes_remote"] is None


OUTSIDE_PEER = r"""
import socket, sys
ls = socket.socket()
ls.bind(("127.0.0.1", 0))
ls.listen(1)
print(ls.getsockname()[1], flush=True)
c, _ = ls.accept()
got = 0
while got < 2 << 20:
    got += len(c.recv(1 << 16))
c.sendall(b"y" * (1 << 20))  # 1 MiB back
c.recv(1)                    # until the client closes
"""

CLIENT = COMMON + r"""
port = int(sys.argv[2])
c = socket.create_connection(("127.0.0.1", port))
c.sendall(b"x" * (2 << 20))
got = 0
while got < 1 << 20:
    got += len(c.recv(1 << 16))
report("done", os.getpid(), got)
c.close()
"""


def test_traffic_of_a_process_outside_the_tree_is_not_counted(sock_ebpf, tmp_path):
    # The peer is not in the tree: it receives 2 MiB and sends 1 MiB, and none of that
    # may appear; the tree's own client sent exactly 2 MiB and received 1 MiB.
    peer = subprocess.Popen([sys.executable, "-S", "-c", OUTSIDE_PEER], stdout=subprocess.PIPE, text=True)
    try:
        port = peer.stdout.readline().strip()
        go = tmp_path / "go"
        script = tmp_path / "client.py"
        script.write_text(CLIENT)
        mon = denet.ProcessMonitor([sys.executable, "-S", str(script), str(go), port],
                                   enable_ebpf=True, quiet=True, stdout=subprocess.DEVNULL)
        assert mon.run() == 0
        summary = mon.get_summary()
        assert summary["total_sock_tx_bytes"] == 2 * MIB
        assert summary["total_sock_rx_bytes"] == 1 * MIB
        peer.wait(timeout=30)
    finally:
        peer.kill()
        peer.wait()


def test_flat_sample_counts_the_process_alone(sock_ebpf, tmp_path):
    # include_children=False: the root's own traffic; its child's is not in the totals.
    code = COMMON + r"""
ls = socket.socket()
ls.bind(("127.0.0.1", 0))
ls.listen(1)
r = os.fork()
if r == 0:
    c, _ = ls.accept()
    got = 0
    while got < 1 << 20:
        got += len(c.recv(1 << 16))
    os._exit(0)
c = socket.create_connection(ls.getsockname())
c.sendall(b"x" * (1 << 20))
os.waitpid(r, 0)
report("sent", os.getpid(), 1 << 20)
hold()
"""
    mon, _, go = run_workload(tmp_path, code, 1, include_children=False)
    s = mon.sample_once()
    assert sock(s) == (0, MIB, 0, 0)
    summary = finish(mon, go)
    assert (summary["total_sock_rx_bytes"], summary["total_sock_tx_bytes"]) == (0, MIB)


def test_without_ebpf_the_fields_are_null_with_a_reason():
    mon = denet.ProcessMonitor(["sleep", "0.2"], quiet=True)
    s = mon.sample_once()
    mon.wait()
    mon.stop()
    for part in (s["parent"], s["aggregated"]):
        assert sock(part) == (None, None, None, None)
    cap = mon.get_metadata()["capabilities"]["sock"]
    assert cap["available"] is False and "enable_ebpf=True" in cap["reason"]
    summary = mon.get_summary()
    for key in ("total_sock_rx_bytes", "total_sock_tx_bytes", "total_sock_rx_bytes_remote",
                "total_sock_tx_bytes_remote"):
        assert summary[key] is None


# ---------------------------------------------------------------------- remote peers

# Two network namespaces joined by a veth pair, made inside the tree (nothing on this
# machine's own network changes, and both go away with the processes): A in one sends
# to B in the other, so every byte goes through a real (non-loopback) device.
VETH = COMMON + r"""
import ctypes, subprocess
libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNET = 0x40000000
N = 4 << 20
SIZE, COUNT = 4096, 32
def netns():
    if libc.unshare(CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNET)")
def sh(*cmd):
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
ready_r, ready_w = os.pipe()   # B: in its namespace / listening
conf_r, conf_w = os.pipe()     # A: the link is configured
b = os.fork()
if b == 0:
    netns()
    os.write(ready_w, b"n")
    os.read(conf_r, 1)
    ls = socket.socket()
    ls.bind(("10.213.0.2", 5555))
    ls.listen(1)
    us = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    us.setsockopt(socket.SOL_SOCKET, 33, 8 << 20)  # SO_RCVBUFFORCE (root): all 32 fit
    us.bind(("10.213.0.2", 5556))
    us.connect(("10.213.0.1", 5557))  # connected: its peer is known, remote
    os.write(ready_w, b"l")
    c, _ = ls.accept()
    got = 0
    while True:
        d = c.recv(1 << 16)
        if not d:
            break
        got += len(d)
    for _ in range(COUNT):
        got += len(us.recv(65536))
    report("b", os.getpid(), got)
    hold()
    os._exit(0)
os.read(ready_r, 1)
a = os.fork()
if a == 0:
    netns()
    sh("ip", "link", "add", "dnva", "type", "veth", "peer", "name", "dnvb", "netns", str(b))
    sh("ip", "addr", "add", "10.213.0.1/30", "dev", "dnva")
    sh("ip", "link", "set", "dnva", "up")
    sh("nsenter", "-t", str(b), "-n", "ip", "addr", "add", "10.213.0.2/30", "dev", "dnvb")
    sh("nsenter", "-t", str(b), "-n", "ip", "link", "set", "dnvb", "up")
    os.write(conf_w, b"c")
    os.read(ready_r, 1)
    c = socket.create_connection(("10.213.0.2", 5555), timeout=30)
    c.sendall(b"x" * N)
    c.close()
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind(("10.213.0.1", 5557))
    for _ in range(COUNT):  # unconnected: its own device note (veth: remote); B's
        u.sendto(b"u" * SIZE, ("10.213.0.2", 5556))  # receive buffer holds them all
    report("a", os.getpid(), N + SIZE * COUNT)
    hold()
    os._exit(0)
os.waitpid(a, 0)
os.waitpid(b, 0)
"""


def test_remote_peer_over_veth(sock_ebpf, tmp_path):
    if os.geteuid() != 0 or not (shutil.which("ip") and shutil.which("nsenter")):
        pytest.skip("needs root, ip and nsenter to make a veth pair between two network namespaces")
    mon, reports, go = run_workload(tmp_path, VETH, 2)
    pids = {kind: int(pid) for kind, pid, _ in reports}
    s = mon.sample_once()
    kids = by_pid(s)
    total = 4 * MIB + 32 * 4096
    # Everything crossed the veth pair: all of it is remote.
    assert sock(kids[pids["a"]]) == (0, total, 0, total)
    assert sock(kids[pids["b"]]) == (total, 0, total, 0)
    summary = finish(mon, go)
    assert summary["total_sock_tx_bytes_remote"] == summary["total_sock_tx_bytes"] == total
    assert summary["total_sock_rx_bytes_remote"] == summary["total_sock_rx_bytes"] == total


def test_a_forked_copy_of_the_monitor_leaves_the_counts_alone(sock_ebpf, tmp_path):
    # os.fork() makes the child's copy of a monitor inert; it must not read (and so fold,
    # i.e. delete) the kernel's counts of exited processes that the parent still needs.
    mon, reports, go = run_workload(tmp_path, TCP_PAIR, 2)
    go.write_text("")
    assert mon.wait(timeout=60) == 0
    time.sleep(0.3)  # the children exited: their entries are no longer tracked
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    mon.stop()
    summary = mon.get_summary()
    assert summary["total_sock_tx_bytes"] == summary["total_sock_rx_bytes"] == 10 * MIB
