"""Behaviour of the sampling session that users only notice when it goes wrong: lost
output, inherited eBPF programs, file descriptors given as output, re-initialisation.
Each test is the regression test of a defect of issue 8."""
import errno
import json
import os
import time

import pytest

import denet

from conftest import py_cmd, wait_until


def test_full_disk_is_raised_at_stop_not_swallowed():
    # issue 8.8: a full disk never reached the user. /dev/full fails every write with
    # ENOSPC, as a full filesystem does.
    mon = denet.ProcessMonitor(["true"], output_file="/dev/full", base_interval_ms=20)
    mon.start()
    mon.wait(timeout=30)
    with pytest.raises(OSError) as ei:
        mon.stop()
    assert ei.value.errno == errno.ENOSPC
    assert "output_file" in str(ei.value)
    # Reported once; the samples in memory stay readable.
    mon.stop()
    assert mon.get_summary()["sample_count"] >= 1


def test_full_disk_makes_run_raise():
    mon = denet.ProcessMonitor(["true"], output_file="/dev/full")
    with pytest.raises(OSError):
        mon.run()


def test_output_file_accepts_a_file_descriptor(tmp_path):
    path = tmp_path / "out.jsonl"
    with open(path, "w") as f:
        mon = denet.ProcessMonitor(["sleep", "0.2"], output_file=f.fileno(),
                                   base_interval_ms=20, write_metadata=True)
        mon.run()
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    kinds = [x["kind"] for x in lines]
    assert kinds[0] == "metadata" and kinds[-1] == "summary"
    assert kinds.count("tree") == len(mon.get_samples())


@pytest.mark.parametrize("fd", [-1, 10**6])
def test_bad_output_fd(fd):
    with pytest.raises(ValueError, match="file descriptor"):
        denet.ProcessMonitor(["true"], output_file=fd)


def test_json_file_stays_valid_when_the_process_forks(tmp_path):
    # issue 8.7: the forked child's hook wrote "\n]\n" through the shared offset, and
    # the parent's later records landed after it.
    out = tmp_path / "o.json"
    mon = denet.ProcessMonitor(["sleep", "0.6"], output_file=str(out), output_format="json",
                               base_interval_ms=20)
    mon.start()
    time.sleep(0.2)
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    mon.wait(timeout=30)
    mon.stop()
    data = json.loads(out.read_text())
    samples = [x for x in data if x.get("kind") == "tree"]
    assert len(samples) == len(mon.get_samples()) >= 5


def bpf_fds():
    out = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            link = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if "bpf" in link:
            with open(f"/proc/self/fdinfo/{fd}") as f:
                info = " ".join(x.strip() for x in f if x.startswith(("prog_tag", "map_type", "link_type", "prog_type", "map_id", "prog_id")))
            out.append(f"{fd}:{link}:{info}")
    return out


def test_forked_child_drops_the_inherited_ebpf_programs(require_ebpf):
    # issue 8.12: a forked worker kept the maps, programs and links, so the machine-wide
    # sys_enter program stayed attached until it exited.
    mon = denet.ProcessMonitor(["sleep", "1"], enable_ebpf=True, base_interval_ms=20)
    assert mon.ebpf_error is None
    mon.start()
    assert bpf_fds()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(w, repr(bpf_fds()).encode())
        os._exit(0)
    os.close(w)
    got = os.read(r, 65536)
    os.close(r)
    os.waitpid(pid, 0)
    mon.wait(timeout=30)
    mon.stop()
    assert got == b"[]"


def test_second_init_after_a_failed_one_starts_clean(tmp_path):
    # issue 8.21: a repeated __init__ must not leak the writer and the tracker.
    mon = denet.ProcessMonitor.__new__(denet.ProcessMonitor)
    with pytest.raises(FileNotFoundError):
        mon.__init__(["/nonexistent/denet-test"], output_file=str(tmp_path / "a.jsonl"))
    mon.__init__(["true"], output_file=str(tmp_path / "b.jsonl"))
    assert mon.run() == 0
    with pytest.raises(RuntimeError, match="already initialized"):
        mon.__init__(["true"])


def test_run_interrupted_terminates_only_its_own_command(tmp_path):
    # issue 8.10: the signal goes through the pidfd. A command that ignores SIGTERM is
    # killed after the grace period, and run() re-raises KeyboardInterrupt.
    ready = tmp_path / "ready"
    code = f"""
        import signal, time, pathlib
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        pathlib.Path({str(ready)!r}).write_text("1")
        time.sleep(60)
    """
    mon = denet.ProcessMonitor(py_cmd(code), base_interval_ms=50)
    import threading, _thread

    def interrupt():
        deadline = time.monotonic() + 30
        while not ready.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        _thread.interrupt_main()

    threading.Thread(target=interrupt).start()
    with pytest.raises(KeyboardInterrupt):
        mon.run()
    assert mon.wait(timeout=10) == -9


def test_cli_out_on_a_full_disk_warns_and_fails():
    import subprocess, sys
    r = subprocess.run([sys.executable, "-m", "denet", "--out", "/dev/full", "--format", "jsonl",
                        "run", "--", "true"], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert "incomplete" in r.stderr


def test_execute_with_monitoring_warns_on_a_full_disk():
    with pytest.warns(RuntimeWarning, match="output_file"):
        code, _ = denet.execute_with_monitoring(["true"], output_file="/dev/full")
    assert code == 0


def test_samples_kept_in_memory_are_the_samples_returned():
    # A sample's children array is shared by the sample kept in memory, the latest one
    # and the dict handed out (reference counted), and the kept ones live in chunks of
    # mapped pages (sample.c, dn_sample_store_keep). Across several chunks (40 children:
    # 9 KB a sample, 512 KB a chunk) and a clear_samples() in between, get_samples()
    # must give back exactly what sample_once() returned.
    cmd = ["sh", "-c", "for i in $(seq 40); do sleep 120 & done; wait"]
    mon = denet.ProcessMonitor(cmd, store_in_memory=True)
    kids = set()
    try:
        assert wait_until(lambda: len((mon.sample_once() or {}).get("children", [])) == 40)
        mon.clear_samples()
        first = [mon.sample_once() for _ in range(150)]
        kids = {c["pid"] for c in first[0]["children"]}
        assert all({c["pid"] for c in s["children"]} == kids for s in first)
        assert mon.get_samples() == first
        mon.clear_samples()
        assert mon.get_samples() == []
        second = [mon.sample_once() for _ in range(80)]
        assert mon.get_samples() == second
        assert {c["pid"] for c in second[-1]["children"]} == kids
    finally:
        for pid in kids:
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        mon.stop()
