"""The ProcessMonitor API: samples, files, redirection, threads, lifetime."""
import csv
import gc
import json
import os
import subprocess
import sys
import threading
import time

import textwrap

import pytest

import denet
from conftest import PY, median, monitor, py_cmd, wait_until
from denet.analysis import load_metrics

FIELDS = [f["name"] for f in denet.SCHEMA]


def test_schema_is_the_metrics_shape():
    assert FIELDS[:3] == ["ts_ms", "cpu_usage", "mem_rss_kb"]
    for f in denet.SCHEMA:
        assert f["unit"] and f["description"] and f["type"] in ("int", "float", "int|None", "float|None")
    mon = denet.ProcessMonitor(["sleep", "0.3"], include_children=False)
    s = mon.sample_once()
    # the Metrics fields, then the sample-level parts there are (psi_mem: memory pressure)
    assert list(s)[:len(FIELDS)] == FIELDS
    assert set(list(s)[len(FIELDS):]) <= {"ebpf", "psi_mem", "perf"}
    mon.wait()


# Starts two `sleep 60` (Popen returns once they have exec'd), says so, and stops them
# when told.
TWO_SLEEPS = """
    import subprocess
    kids = [subprocess.Popen(["sleep", "60"]) for _ in range(2)]
    for k in kids:
        execd(k.pid, "sleep", "60")
    say("ready", *[k.pid for k in kids])
    hear()
    for k in kids:
        k.kill()
        k.wait()
"""


def test_tree_sample_shape_and_children(steps):
    mon = denet.ProcessMonitor(py_cmd(steps.prelude + textwrap.dedent(TWO_SLEEPS)),
                               stdout=steps.w)
    steps.started()
    pids = [int(x) for x in steps.expect().split()[1:]]
    s = mon.sample_once()
    steps.send()
    assert mon.wait(timeout=30) == 0
    assert set(s) == {"ts_ms", "parent", "children", "aggregated"}
    assert list(s["parent"]) == FIELDS
    assert [c["command"] for c in s["children"]] == ["sleep 60", "sleep 60"]
    assert sorted(c["pid"] for c in s["children"]) == sorted(pids)
    assert all(c["ppid"] == mon.get_pid() for c in s["children"])
    for c in s["children"]:
        assert list(c["metrics"]) == FIELDS and c["pid"] > 0
    agg = s["aggregated"]
    assert agg["process_count"] == 3
    assert agg["mem_rss_kb"] == s["parent"]["mem_rss_kb"] + sum(
        c["metrics"]["mem_rss_kb"] for c in s["children"])
    assert agg["thread_count"] == 3


def test_metadata():
    mon = denet.ProcessMonitor(["sleep", "0.1"])
    md = mon.get_metadata()
    assert md["pid"] == mon.get_pid()
    assert md["cmd"] == ["sleep", "0.1"]
    assert md["executable"].endswith("/sleep")
    assert abs(md["t0_ms"] - time.time() * 1000) < 60_000
    mon.wait()
    att = denet.ProcessMonitor.from_pid(os.getpid())
    assert att.get_metadata()["cmd"][0] == sys.executable or "python" in att.get_metadata()["cmd"][0]


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def test_output_file_jsonl_is_tagged_and_ends_with_the_summary(tmp_path):
    out = tmp_path / "run.jsonl"
    mon = denet.ProcessMonitor(["sh", "-c", "sleep 0.5"], base_interval_ms=50,
                               output_file=str(out), write_metadata=True)
    assert mon.run() == 0
    lines = read_jsonl(out)
    kinds = [l["kind"] for l in lines]
    assert kinds[0] == "metadata" and kinds[-1] == "summary"
    assert set(kinds[1:-1]) == {"tree"} and len(kinds) >= 5
    summary = lines[-1]
    del summary["kind"]
    assert summary == mon.get_summary()
    assert len(mon.get_samples()) == len(lines) - 2


def test_output_formats_json_and_csv(tmp_path):
    j = tmp_path / "run.json"
    mon = denet.ProcessMonitor(["sleep", "0.3"], base_interval_ms=50, output_file=str(j),
                               output_format="json", include_children=False)
    mon.run()
    data = json.loads(j.read_text())
    assert [d["kind"] for d in data][-1] == "summary"
    assert all(d["kind"] == "sample" for d in data[:-1])

    c = tmp_path / "run.csv"
    mon = denet.ProcessMonitor(["sleep", "0.3"], base_interval_ms=50, output_file=str(c),
                               output_format="csv")
    mon.run()
    rows = list(csv.DictReader(c.open()))
    assert len(rows) >= 3
    assert "aggregated.cpu_usage" in rows[0] and "parent.mem_rss_kb" in rows[0]
    assert int(rows[0]["aggregated.process_count"]) == 1
    assert rows[0]["children"] == "[]"


@pytest.mark.parametrize("fmt", ["jsonl", "json", "csv"])
def test_save_samples_round_trip(tmp_path, fmt):
    mon = denet.ProcessMonitor(["sleep", "0.3"], base_interval_ms=50, include_children=False)
    mon.run()
    samples = mon.get_samples()
    n = len(samples)
    assert n >= 3
    path = tmp_path / f"s.{fmt}"
    mon.save_samples(str(path), format=fmt)
    assert load_metrics(path) == samples  # every value read back
    if fmt == "jsonl":
        lines = read_jsonl(path)
        assert [l["kind"] for l in lines] == ["metadata"] + ["sample"] * n + ["summary"]
    elif fmt == "json":
        lines = json.loads(path.read_text())
        assert len(lines) == n + 2
    else:
        rows = list(csv.reader(path.open()))
        assert rows[0][:len(FIELDS)] == FIELDS and len(rows) == n + 1
        # then the memory pressure of the sample, where the kernel has PSI
        assert set(rows[0][len(FIELDS):]) <= {"psi_mem.some_avg10", "psi_mem.full_avg10"}
        return
    assert lines[0] == dict(mon.get_metadata(), kind="metadata")
    assert lines[-1] == dict(mon.get_summary(), kind="summary")


def test_store_in_memory_false_keeps_latest_only():
    mon = denet.ProcessMonitor(["sleep", "0.4"], base_interval_ms=50, store_in_memory=False)
    mon.run()
    assert mon.get_samples() == []
    assert mon.latest_sample() is not None
    assert mon.get_summary()["sample_count"] >= 3


def test_clear_samples():
    mon = denet.ProcessMonitor(["sleep", "0.3"], base_interval_ms=50)
    mon.run()
    assert mon.get_samples()
    mon.clear_samples()
    assert mon.get_samples() == []
    assert mon.get_summary()["sample_count"] >= 3


def test_stdout_stderr_redirection(tmp_path):
    out, err = tmp_path / "o.txt", tmp_path / "e.txt"
    cmd = ["sh", "-c", "echo to-out; echo to-err >&2"]
    denet.ProcessMonitor(cmd, stdout=str(out), stderr=str(err)).run()
    assert out.read_text() == "to-out\n" and err.read_text() == "to-err\n"
    with open(tmp_path / "both.txt", "w") as f:
        denet.ProcessMonitor(cmd, stdout=f, stderr=subprocess.STDOUT).run()
    assert sorted((tmp_path / "both.txt").read_text().split()) == ["to-err", "to-out"]
    denet.ProcessMonitor(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).run()


def test_output_is_inherited_by_default():
    code = "import denet; denet.ProcessMonitor(['sh', '-c', 'echo hello-from-child']).run()"
    r = subprocess.run([PY, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0
    assert r.stdout == "hello-from-child\n"


def test_env_and_cwd(tmp_path):
    out = tmp_path / "o.txt"
    denet.ProcessMonitor(["sh", "-c", "echo $DENET_X; pwd"], env={"DENET_X": "42",
                         "PATH": os.environ["PATH"]}, cwd=str(tmp_path), stdout=str(out)).run()
    assert out.read_text().split() == ["42", str(tmp_path)]


def test_start_new_session():
    mon = denet.ProcessMonitor(["sleep", "0.3"], start_new_session=True)
    assert os.getsid(mon.get_pid()) == mon.get_pid()
    mon.wait()


def test_context_manager_samples_and_stops():
    with denet.ProcessMonitor(["sleep", "0.4"], base_interval_ms=50) as mon:
        assert mon.wait() == 0
    n = len(mon.get_samples())
    time.sleep(0.2)
    assert len(mon.get_samples()) == n >= 3
    with pytest.raises(RuntimeError, match="stopped"):
        mon.start()


def test_adaptive_interval_ramps_after_one_second():
    mon = denet.ProcessMonitor(["sleep", "3.2"], base_interval_ms=50, max_interval_ms=1000,
                               include_children=False)
    mon.run()
    ts = [s["ts_ms"] for s in mon.get_samples()][:-1]  # the last: the read at exit
    t0 = ts[0]

    def planned(t):  # 50 ms for the first second, then a ramp to 1000 ms at 10 s
        return 50 if t < 1000 else 50 + 950 * (t - 1000) / 9000
    # Each gap is the interval planned at the sample that starts it, plus the time the
    # thread takes to wake: late on a loaded machine, never early. Medians, so that a
    # few late wake-ups cannot fail it, but a wrong interval (say 100 ms, or no ramp)
    # does.
    early = [b - a - planned(a - t0) for a, b in zip(ts, ts[1:]) if b - t0 < 1000]
    late = [b - a - planned(a - t0) for a, b in zip(ts, ts[1:]) if a - t0 > 2000]
    assert len(early) >= 5 and len(late) >= 3, (early, late)
    assert -2 <= median(early) <= 20, early
    assert -2 <= median(late) <= 30, late
    assert min(early + late) >= -2  # never sooner than planned (ms rounding aside)


def test_subclass_and_monkeypatch(monkeypatch):
    class Tagged(denet.ProcessMonitor):
        def __init__(self, *a, tag="x", **kw):
            super().__init__(*a, **kw)
            self.tag = tag

        def cpu_seconds(self):
            return self.get_summary()["total_cpu_time_secs"]

    t = Tagged(["true"], tag="mine")
    assert t.run() == 0 and t.tag == "mine" and t.cpu_seconds() >= 0
    att = Tagged.from_pid(os.getpid())
    assert type(att) is Tagged
    monkeypatch.setattr(denet.ProcessMonitor, "get_summary", lambda self: {"patched": True})
    assert denet.ProcessMonitor(["true"]).get_summary() == {"patched": True}


def test_methods_from_many_threads_while_sampling():
    mon = denet.ProcessMonitor(py_cmd("import time; time.sleep(1.5)"), base_interval_ms=5)
    mon.start()
    errors = []

    def hammer(i):
        try:
            for _ in range(150):
                [mon.get_samples, mon.latest_sample, mon.sample_once, mon.get_summary,
                 mon.is_running][i % 5]()
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=hammer, args=(i,)) for i in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert mon.wait() == 0
    mon.stop()
    assert errors == []
    ts = [s["ts_ms"] for s in mon.get_samples()]
    assert ts == sorted(ts)


def our_thread_count():
    return len(os.listdir("/proc/self/task"))


def test_garbage_collected_monitor_stops_its_thread():
    before = our_thread_count()
    mon = denet.ProcessMonitor(["sleep", "2"], base_interval_ms=20)
    mon.start()
    assert our_thread_count() == before + 1
    pid = mon.get_pid()
    del mon
    gc.collect()
    # The sampler is gone; the command runs on (as a deleted Popen's does) and one
    # reaper thread waits for it, so it never stays a zombie.
    assert our_thread_count() == before + 1
    os.kill(pid, 9)
    deadline = time.monotonic() + 10
    while our_thread_count() > before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert our_thread_count() == before
    assert not os.path.exists(f"/proc/{pid}")


def zombies_of_ours():
    me = str(os.getpid())
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                st = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if st[0] == "Z" and st[1] == me:
            out.append(int(d))
    return out


def test_deleted_monitors_leave_no_zombies():
    # issue 8.13: twenty started-and-deleted monitors left twenty zombies.
    for _ in range(20):
        mon = denet.ProcessMonitor(["sleep", "0.2"], base_interval_ms=20)
        mon.start()
        del mon
    gc.collect()
    deadline = time.monotonic() + 15
    while zombies_of_ours() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    assert zombies_of_ours() == []


def test_running_monitor_at_interpreter_exit_flushes_its_summary(tmp_path):
    out = tmp_path / "o.jsonl"
    code = (f"import denet\nm = denet.ProcessMonitor(['sleep', '5'], output_file={str(out)!r},"
            " base_interval_ms=20)\nm.start()\nimport time; time.sleep(0.3)\n")
    r = subprocess.run([PY, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert read_jsonl(out)[-1]["kind"] == "summary"


def test_attach_to_a_running_tree(steps):
    p = subprocess.Popen(py_cmd(steps.prelude + textwrap.dedent(TWO_SLEEPS)), stdout=steps.w)
    steps.started()
    try:
        pids = [int(x) for x in steps.expect().split()[1:]]
        mon = denet.ProcessMonitor.from_pid(p.pid, base_interval_ms=50)
        s = mon.sample_once()
        assert s["aggregated"]["process_count"] == 3
        assert sorted(c["pid"] for c in s["children"]) == sorted(pids)
        assert mon.is_running()
        assert mon.wait(timeout=0.1) is None
    finally:
        steps.close()
        p.kill()
        p.wait()
    assert not mon.is_running()
    assert mon.sample_once() is None


def test_csv_columns_match_the_python_flattening(tmp_path):
    from denet import _formats
    mon = denet.ProcessMonitor(["sh", "-c", "sleep 0.3 & wait"], base_interval_ms=50)
    mon.run()
    path = tmp_path / "s.csv"
    mon.save_samples(str(path), format="csv")
    rows = list(csv.reader(path.open()))
    assert rows[0] == _formats.to_csv(mon.get_samples()).splitlines()[0].split(",")
    with_children = [r for r in csv.DictReader(path.open()) if r["children"] != "[]"]
    assert json.loads(with_children[0]["children"])[0]["metrics"]["thread_count"] == 1


def test_ctrl_c_during_run_stops_the_command_and_raises():
    code = ("import denet, sys\n"
            "mon = denet.ProcessMonitor(['sleep', '30'])\n"
            "print(mon.get_pid(), flush=True)\n"
            "try:\n"
            "    mon.run()\n"
            "except KeyboardInterrupt:\n"
            "    print('interrupted', mon.wait(timeout=5), len(mon.get_samples()) > 0, flush=True)\n")
    p = subprocess.Popen([PY, "-c", code], stdout=subprocess.PIPE, text=True)
    child = int(p.stdout.readline())
    time.sleep(0.5)
    p.send_signal(2)  # SIGINT, as Ctrl-C would
    out, _ = p.communicate(timeout=30)
    assert out.split() == ["interrupted", "-15", "True"]
    with pytest.raises(ProcessLookupError):
        os.kill(child, 0)


def test_odd_command_lines_are_valid_json_and_text(tmp_path, steps):
    # A child whose argv has quotes, a newline, a tab, a backslash and invalid UTF-8.
    # The shell says when it runs, and again once its own child (sleep 60) was forked.
    out = tmp_path / "o.jsonl"
    odd = b'a"b\nc\td\\e\xff\xfe'
    script = (f"echo ready; read x < {steps.fifo}; sleep 60 & echo started $!; "
              f"read y < {steps.fifo}; kill $!; wait").encode()
    code = ("import os, sys, time\n"
            f"pid = os.fork()\n"
            f"if pid == 0:\n    os.execv('/bin/sh', [b'sh', b'-c', {script!r}, {odd!r}])\n"
            "os.waitpid(pid, 0)\n")
    mon = denet.ProcessMonitor([PY, "-c", code], output_file=str(out), base_interval_ms=50,
                               stdout=steps.w)
    steps.started()
    assert steps.expect() == "ready"
    s = mon.sample_once()
    steps.send()
    sleeper = int(steps.expect().split()[1])

    def cmdline():
        with open(f"/proc/{sleeper}/cmdline", "rb") as f:
            return f.read()
    # its exec is complete (the command line is set last): sample it now
    assert wait_until(lambda: cmdline() == b"sleep\x0060\x00")
    assert [c["command"] for c in mon.sample_once()["children"]
            if c["pid"] == sleeper] == ["sleep 60"]
    steps.send()
    assert mon.run() == 0
    cmds = [c["command"] for c in s["children"]]
    assert cmds == ['sh -c ' + script.decode() + ' a"b\nc\td\\e\ufffd\ufffd']
    in_file = {c["command"] for line in out.read_text(encoding="utf-8").splitlines()
               for c in json.loads(line).get("children", [])}
    assert cmds[0] in in_file and "sleep 60" in in_file


@pytest.mark.parametrize("ebpf", [False, True], ids=["procfs", "ebpf"])
def test_child_command_is_read_again_after_it_execs(ebpf, request, steps):
    if ebpf:
        request.getfixturevalue("require_ebpf")
    code = steps.prelude + textwrap.dedent("""
        import os
        pid = os.fork()
        if pid == 0:
            say("forked", os.getpid())
            hear()
            os.execv("/bin/sleep", ["sleep", "60"])
        os.waitpid(pid, 0)
    """)
    mon = monitor([PY, "-c", code], ebpf, quiet=True, stdout=steps.w)
    steps.started()
    child = int(steps.expect().split()[1])
    before = mon.sample_once()["children"]
    steps.send()
    # the exec is the child's business: sample until its new command shows
    assert wait_until(lambda: mon.sample_once()["children"][0]["command"] == "sleep 60")
    after = mon.sample_once()["children"]
    os.kill(child, 9)
    assert mon.run() == 0
    assert len(before) == 1 and before[0]["command"].startswith(PY)
    assert len(after) == 1 and after[0]["command"] == "sleep 60"
    assert after[0]["pid"] == before[0]["pid"] == child


def settle(pid, quiet_s=0.2, limit_s=10.0):
    """Waits until no process of pid's tree has run for quiet_s (their run times in
    /proc/PID/schedstat unchanged), at most limit_s."""
    def run_times():
        pids = [pid]
        try:
            with open(f"/proc/{pid}/task/{pid}/children") as f:
                pids += [int(x) for x in f.read().split()]
            out = {}
            for q in pids:
                with open(f"/proc/{q}/schedstat") as f:
                    out[q] = f.read().split()[0]
            return out
        except OSError:
            return None
    end = time.monotonic() + limit_s
    last = run_times()
    while time.monotonic() < end:
        time.sleep(quiet_s)
        now = run_times()
        if now == last:
            return
        last = now


def test_idle_processes_read_cheaply_give_the_same_numbers(monkeypatch):
    # A process whose CPU clock has not moved is read from its clock and statm only;
    # the figures must equal a full read of all its files.
    code = ("import subprocess, time\n"
            "b = bytearray(32 << 20)\n"
            "for i in range(0, len(b), 4096): b[i] = 1\n"
            "ps = [subprocess.Popen(['sleep', '30']) for _ in range(3)]\n"
            "print('ready', flush=True)\n"
            "time.sleep(30)\n")
    p = subprocess.Popen([PY, "-c", code], stdout=subprocess.PIPE, text=True,
                         start_new_session=True)
    try:
        assert p.stdout.readline() == "ready\n"
        # Both monitors start on a settled tree: the user/system split comes from the
        # 10 ms ticks of /proc/PID/stat, kept monotonic per monitor, so two monitors that
        # first read a process while it still ran (a loaded machine: the sleeps still
        # starting) may keep different splits of the same total.
        settle(p.pid)
        cheap = denet.ProcessMonitor.from_pid(p.pid, since_process_start=True)
        monkeypatch.setenv("DENET_ALWAYS_FULL_READ", "1")
        full = denet.ProcessMonitor.from_pid(p.pid, since_process_start=True)
        for _ in range(3):
            a, b = cheap.sample_once(), full.sample_once()
            time.sleep(0.05)
        skip = {"ts_ms", "cpu_usage", "uptime_secs", "cpu_core"}
        pairs = [(a["parent"], b["parent"])] + list(zip(
            [c["metrics"] for c in a["children"]], [c["metrics"] for c in b["children"]]))
        assert len(pairs) == 4
        for x, y in pairs:
            assert {k: v for k, v in x.items() if k not in skip} == \
                   {k: v for k, v in y.items() if k not in skip}
        assert a["parent"]["mem_rss_kb"] > 32 * 1024
    finally:
        os.killpg(p.pid, 9)
        p.wait()


def test_fork_while_sampling_leaves_the_child_inert(tmp_path):
    out = tmp_path / "o.jsonl"
    code = (f"import denet, os, time\n"
            f"m = denet.ProcessMonitor(['sleep', '1'], output_file={str(out)!r},"
            " base_interval_ms=5)\n"
            "m.start()\n"
            "time.sleep(0.2)\n"
            "pid = os.fork()\n"
            "if pid == 0:\n"
            "    assert m.get_summary()['sample_count'] > 0\n"
            "    m.stop()\n"
            "    raise SystemExit(0)  # normal exit: atexit handlers run\n"
            "_, st = os.waitpid(pid, 0)\n"
            "assert st == 0, st\n"
            "print(m.wait())\n")
    r = subprocess.run([PY, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "0"
    kinds = [json.loads(l)["kind"] for l in out.read_text().splitlines()]
    assert kinds.count("summary") == 1 and kinds[-1] == "summary"
