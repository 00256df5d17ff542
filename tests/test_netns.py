"""sys_net_rx_bytes / sys_net_tx_bytes against a known transfer.

The counters are those of the monitored process's network namespace (lo excluded), so
the test builds one where it knows every byte: two fresh namespaces joined by a veth
pair, IPv6 off (no neighbour discovery or MLD chatter), static neighbour entries (no
ARP). The workload in the first sends N UDP datagrams of P bytes to a receiver in the
second, which answers with M datagrams of Q bytes. On the wire each datagram is its
payload plus 42 bytes (UDP 8, IPv4 20, Ethernet 14), and nothing else crosses the link.
Every address is inside the namespaces the test made; they are deleted at the end.
Needs root (ip netns); it fails instead of skipping where privileged tests must run."""
import json
import os
import shutil
import subprocess
import textwrap

import pytest

from conftest import monitor, must_run, py_cmd, wait_until

N, P = 40, 1000   # sent by the monitored workload
M, Q = 25, 600    # sent back to it
WIRE = 8 + 20 + 14

SENDER = """
    import socket
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind((A, 9001))
    rx.settimeout(30)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    say("ready")
    hear()
    for _ in range(N):
        tx.sendto(b"x" * P, (B, 9000))
    got = sum(len(rx.recv(65536)) for _ in range(M))
    say("done", got)
    hear()
"""

RECEIVER = """
    import socket, sys
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind((B, 9000))
    rx.settimeout(30)
    print("ready", flush=True)
    got = sum(len(rx.recv(65536)) for _ in range(N))
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for _ in range(M):
        tx.sendto(b"y" * Q, (A, 9001))
    print("received", got, flush=True)
"""


def ip(*args):
    return subprocess.run(["ip", *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture(params=[0, 70], ids=["two-interfaces", "142-interfaces"])
def veth_pair(request):
    """(ns_a, addr_a, ns_b, addr_b, idle pairs): two new namespaces joined by a veth pair; with the
    parameter, that many idle veth pairs made in the first namespace before it, so that
    its /proc/PID/net/dev (130 bytes an interface) is longer than 8 KB and the pair
    that carries the traffic comes last, as on a host of containers."""
    if os.geteuid() != 0:
        if must_run():
            pytest.fail("network namespaces need root, and DENET_REQUIRE_EBPF is set")
        pytest.skip("network namespaces need root")
    if not shutil.which("ip"):
        pytest.fail("needs ip (Debian package iproute2; make deps installs it)")
    tag = f"{os.getpid() % 100000}"
    a, b = f"denet-a-{tag}", f"denet-b-{tag}"
    octet = os.getpid() % 250 + 1
    addr_a, addr_b = f"10.213.{octet}.1", f"10.213.{octet}.2"
    made = []
    try:
        for ns in (a, b):
            ip("netns", "add", ns)
            made.append(ns)
            ip("netns", "exec", ns, "sh", "-c",
               "echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6; "
               "echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6")
        for i in range(request.param):
            ip("-n", a, "link", "add", f"xa{i}", "type", "veth", "peer", "name", f"xb{i}")
        ip("link", "add", "va", "netns", a, "type", "veth", "peer", "name", "vb", "netns", b)
        for ns, dev, addr in ((a, "va", addr_a), (b, "vb", addr_b)):
            ip("netns", "exec", ns, "sh", "-c", f"echo 1 > /proc/sys/net/ipv6/conf/{dev}/disable_ipv6")
            ip("-n", ns, "addr", "add", f"{addr}/30", "dev", dev)
        mac = {dev: json.loads(ip("-n", ns, "-j", "link", "show", dev))[0]["address"]
               for ns, dev in ((a, "va"), (b, "vb"))}
        ip("-n", a, "neigh", "add", addr_b, "lladdr", mac["vb"], "dev", "va", "nud", "permanent")
        ip("-n", b, "neigh", "add", addr_a, "lladdr", mac["va"], "dev", "vb", "nud", "permanent")
        for ns, dev in ((a, "va"), (b, "vb")):
            ip("-n", ns, "link", "set", dev, "up")
        yield a, addr_a, b, addr_b, request.param
    finally:
        for ns in made:  # deleting a namespace deletes its end of the pair, and the pair
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def test_namespace_traffic_of_a_known_transfer(veth_pair, steps):
    a, addr_a, b, addr_b, idle_pairs = veth_pair
    consts = f"A, B, N, P, M, Q = {addr_a!r}, {addr_b!r}, {N}, {P}, {M}, {Q}\n"
    receiver = subprocess.Popen(["ip", "netns", "exec", b, *py_cmd(consts + textwrap.dedent(RECEIVER))],
                                stdout=subprocess.PIPE, text=True)
    # `ip netns exec` enters the namespace and execs the interpreter: the pid we attach to
    # is the workload's, already inside the namespace.
    sender = subprocess.Popen(["ip", "netns", "exec", a,
                               *py_cmd(steps.prelude + consts + textwrap.dedent(SENDER))],
                              stdout=steps.w)
    steps.started()
    try:
        assert receiver.stdout.readline() == "ready\n"
        assert steps.expect() == "ready"
        with open(f"/proc/{sender.pid}/net/dev", "rb") as f:
            dev = f.read()
        assert (len(dev) > 8192) == (idle_pairs > 0), len(dev)
        assert dev.splitlines()[-1].lstrip().startswith(b"va:")  # the pair comes last
        mon = monitor(sender.pid, base_interval_ms=50)
        mon.start()
        first = wait_until(mon.latest_sample)
        assert first and first["aggregated"]["sys_net_tx_bytes"] == 0
        steps.send()
        assert steps.expect() == f"done {M * Q}"
        assert receiver.stdout.readline() == f"received {N * P}\n"
        assert receiver.wait(timeout=30) == 0
        s = mon.sample_once()["aggregated"]
        summary = mon.get_summary()
        assert s["sys_net_tx_bytes"] == N * (P + WIRE), s
        assert s["sys_net_rx_bytes"] == M * (Q + WIRE), s
        assert summary["total_sys_net_tx_bytes"] == N * (P + WIRE)
        assert summary["total_sys_net_rx_bytes"] == M * (Q + WIRE)
        steps.send("exit")
        assert sender.wait(timeout=30) == 0
        mon.stop()
    finally:
        steps.close()
        for p in (sender, receiver):
            if p.poll() is None:
                p.kill()
                p.wait()
