"""The denet command line, driven through subprocess (`python -m denet`)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from denet import _cli_format, cli

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def ext():
    import denet._denet
    return denet._denet


def env():
    e = dict(os.environ)
    e["PYTHONPATH"] = str(REPO) + (os.pathsep + e["PYTHONPATH"] if e.get("PYTHONPATH") else "")
    return e


def denet(*args, timeout=60, **kw):
    return subprocess.run(
        [sys.executable, "-m", "denet", *args], capture_output=True, text=True, timeout=timeout, env=env(), **kw
    )


def spawn_denet(*args, **kw):
    return subprocess.Popen(
        [sys.executable, "-m", "denet", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=env(), **kw
    )


def pid_gone(pid, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                    return True
        except (FileNotFoundError, ProcessLookupError):
            return True
        time.sleep(0.05)
    return False


def wait_for_file(path, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return path.read_text().strip()
        time.sleep(0.05)
    raise AssertionError(f"{path} never appeared")


PY = sys.executable


def tree(ts, cpu, rss, procs, threads, dr):
    a = {"ts_ms": ts, "cpu_usage": cpu, "mem_rss_kb": rss, "thread_count": threads, "disk_read_bytes": dr,
         "disk_write_bytes": 0, "process_count": procs}
    parent = {k: v for k, v in a.items() if k != "process_count"}
    return {"kind": "tree", "ts_ms": ts, "parent": parent, "children": [], "aggregated": a}


@pytest.fixture
def recorded(tmp_path):
    """A small recorded file: metadata + 3 tree samples (max 3 processes)."""
    p = tmp_path / "rec.jsonl"
    lines = [
        {"kind": "metadata", "pid": 1, "cmd": ["x"], "executable": "/x", "t0_ms": 1000},
        tree(1000, 100.0, 2048, 1, 2, 0),
        tree(2000, 200.0, 4096, 3, 5, 1024),
        tree(3000, 0.0, 1024, 2, 3, 4096),
    ]
    p.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return p


# ------------------------------------------------------------ pure Python parts


class TestFormatting:
    def test_fmt_bytes(self):
        assert _cli_format.fmt_bytes(0) == "0 B"
        assert _cli_format.fmt_bytes(1023) == "1023 B"
        assert _cli_format.fmt_bytes(1536) == "1.5 KiB"
        assert _cli_format.fmt_bytes(5 * 1024 ** 3) == "5.0 GiB"
        assert _cli_format.fmt_kib(2048) == "2.0 MiB"

    def test_fmt_duration(self):
        assert _cli_format.fmt_duration(5.25) == "5.2s" or _cli_format.fmt_duration(5.25) == "5.3s"
        assert _cli_format.fmt_duration(75.5) == "1m15.5s"
        assert _cli_format.fmt_duration(3725) == "1h02m05s"

    def test_status_line(self):
        sample = {"ts_ms": 1, "parent": {}, "children": [],
                  "aggregated": {"cpu_usage": 150.0, "mem_rss_kb": 2048, "thread_count": 7,
                                 "disk_read_bytes": 1024, "disk_write_bytes": 0, "process_count": 3}}
        line = _cli_format.status_line(sample, 12.0)
        assert "procs 3" in line and "CPU 150.0%" in line and "mem 2.0 MiB" in line
        assert "threads 7" in line and "disk r 1.0 KiB w 0 B" in line
        assert "syscalls" not in line
        assert "syscalls 1,234/s" in _cli_format.status_line(sample, 12.0, 1234.0)
        assert "waiting" in _cli_format.status_line(None, 0.1)

    def test_summary_table(self):
        s = {"total_time_secs": 2.0, "sample_count": 3, "max_processes": 4, "max_threads": 9,
             "avg_cpu_usage": 50.0, "total_cpu_time_secs": 1.0, "peak_mem_rss_kb": 1024,
             "total_syscalls": 10, "syscalls_by_category": {"file_io": 7, "ipc": 3, "time": 0}}
        table = _cli_format.summary_table(s)
        assert "Max processes" in table and " 4\n" in table
        assert "file_io" in table and "time" not in table.split("Syscalls")[1]

    def test_peak_rows_say_what_they_measure(self):
        # the one-process peak (a high-water mark) larger than the tree's sampled peak
        s = {"peak_mem_rss_kb": 1024, "peak_process_rss_kb": 4096}
        rows = dict(line.strip().rsplit("  ", 1) for line in _cli_format.summary_table(s).splitlines()[2:])
        rows = {k.strip(): v.strip() for k, v in rows.items()}
        assert rows["Peak RSS of the tree (sum at one sample)"] == "1.0 MiB"
        assert rows["Peak RSS of one process (kernel high-water mark)"] == "4.0 MiB"
        s["estimated"] = ["peak_process_rss_kb"]
        assert "Peak RSS of one process (largest sampled)" in _cli_format.summary_table(s)

    def test_table_of_values_that_are_not_numbers(self):
        s = {"total_cpu_time_secs": "lots", "avg_cpu_usage": float("inf"), "peak_mem_rss_kb": 10 ** 400,
             "total_syscalls": None, "syscalls_by_category": {"file_io": "x", "ipc": 3}}
        table = _cli_format.summary_table(s)
        assert "'lots' (not a number)" in table
        assert "file_io" in table and "ipc" in table

    def test_status_line_waits_for_a_memory_reading(self, monkeypatch):
        import io
        err = io.StringIO()
        monkeypatch.setattr("sys.stderr", err)
        status = _cli_format.StatusLine(enabled=True, ebpf=False)
        # a process read before it has memory, or as a zombie, reads 0 KiB
        zero = {"ts_ms": 1, "parent": {"mem_rss_kb": 0}, "children": [],
                "aggregated": {"cpu_usage": 50.0, "mem_rss_kb": 0, "thread_count": 1, "process_count": 1}}
        status.update(None, 0.1, force=True)
        status.update(zero, 0.2, force=True)
        assert err.getvalue() == ""
        real = {**zero, "aggregated": {**zero["aggregated"], "mem_rss_kb": 2048}}
        status.update(real, 0.3, force=True)
        assert "mem 2.0 MiB" in err.getvalue()
        status.update(zero, 0.4, force=True)  # once there was a reading, every sample shows
        assert err.getvalue().count("\r[") == 2


class TestStats:
    def test_table(self, recorded):
        r = denet("stats", str(recorded))
        assert r.returncode == 0, r.stderr
        assert "Max processes" in r.stdout
        line = [x for x in r.stdout.splitlines() if "Max processes" in x][0]
        assert line.split()[-1] == "3"

    def test_json(self, recorded):
        r = denet("--json", "stats", str(recorded))
        assert r.returncode == 0, r.stderr
        s = json.loads(r.stdout)
        assert s["kind"] == "summary"
        assert s["sample_count"] == 3
        assert s["max_processes"] == 3
        assert s["max_threads"] == 5
        assert s["peak_mem_rss_kb"] == 4096
        assert s["avg_cpu_usage"] == 100.0
        assert s["total_time_secs"] == 2.0
        assert s["total_cpu_time_secs"] == 2.0  # 200 % for 1 s + 0 % for 1 s
        assert s["total_disk_read_bytes"] == 4096

    def test_stats_file(self, recorded, tmp_path):
        out = tmp_path / "summary.json"
        r = denet("stats", str(recorded), "--stats", str(out))  # options after the sub-command too
        assert r.returncode == 0, r.stderr
        assert json.loads(out.read_text())["sample_count"] == 3

    def test_csv_and_json_files(self, recorded, tmp_path):
        # `denet stats run.csv` used to say "no denet samples found"
        from denet.analysis import save_metrics
        samples = [json.loads(x) for x in recorded.read_text().splitlines()][1:]
        for fmt in ("csv", "json"):
            path = tmp_path / f"rec.{fmt}"
            save_metrics(samples, path, format=fmt)
            r = denet("--json", "stats", str(path))
            assert r.returncode == 0, r.stderr
            s = json.loads(r.stdout)
            assert (s["sample_count"], s["max_processes"], s["max_threads"]) == (3, 3, 5)
            assert s["total_cpu_time_secs"] == 2.0 and s["total_disk_read_bytes"] == 4096
            forced = denet("--json", "stats", "--format", "jsonl", str(path))
            assert forced.returncode == 1 and "no denet samples" in forced.stderr

    def test_bad_lines_are_skipped_and_reported(self, recorded):
        text = recorded.read_text().splitlines()
        text[2:2] = ["[" * 100_000,
                     '{"kind": "tree", "ts_ms": 1500, "aggregated": {"cpu_usage": 1e400, "mem_rss_kb": 1}}',
                     '{"kind": "summary", "sample_count": 3, "total_time_secs": 2, "total_cpu_time_secs": "lots"}']
        recorded.write_text("\n".join(text) + "\n")
        r = denet("--json", "stats", str(recorded))
        assert r.returncode == 0, r.stderr
        strict = json.loads(r.stdout, parse_constant=lambda c: pytest.fail(f"not JSON: {c}"))
        assert strict["avg_cpu_usage"] == 100.0 and strict["sample_count"] == 3
        assert strict["skipped_records"] == 3
        assert "skipped 3 lines" in r.stderr and "line 3: JSON nested too deeply" in r.stderr
        assert "line 4: aggregated.cpu_usage is inf" in r.stderr and "Traceback" not in r.stderr
        r = denet("stats", str(recorded))
        assert r.returncode == 0, r.stderr
        assert "Skipped records" in r.stdout and "2.00 s" in r.stdout  # CPU time estimated from the samples

    def test_monitoring_options_are_refused(self, recorded):
        r = denet("stats", "--help")
        assert r.returncode == 0
        for opt in ("--enable-ebpf", "--interval", "--duration", "--out FILE", "--exclude-children"):
            assert opt not in r.stdout
        for args in (["stats", "--interval", "50", str(recorded)], ["--enable-ebpf", "stats", str(recorded)],
                     ["--duration", "5", "stats", str(recorded)], ["stats", str(recorded), "-d", "5"]):
            r = denet(*args)
            assert r.returncode == 2, args
            assert "applies to run and attach, not to stats" in r.stderr

    def test_missing_and_garbage(self, tmp_path):
        r = denet("stats", str(tmp_path / "nope.jsonl"))
        assert r.returncode == 1
        assert "nope.jsonl" in r.stderr
        g = tmp_path / "g.jsonl"
        g.write_text("garbage\n")
        r = denet("stats", str(g))
        assert r.returncode == 1
        assert "no denet samples" in r.stderr


class TestUsage:
    def test_no_subcommand(self):
        assert denet().returncode == 2

    def test_run_without_command(self):
        r = denet("run")
        assert r.returncode == 2
        assert "no command" in r.stderr
        assert denet("run", "--").returncode == 2

    @pytest.mark.parametrize("args", [["--interval", "0", "run", "--", "true"],
                                      ["--interval", "abc", "run", "--", "true"],
                                      ["--duration", "-1", "run", "--", "true"],
                                      ["attach", "notapid"]])
    def test_bad_options(self, args):
        r = denet(*args)
        assert r.returncode == 2
        assert "error" in r.stderr

    @pytest.mark.parametrize("args", [["--interval", "2147483648", "run", "--", "true"],
                                      ["run", "--max-interval", "99999999999999999999", "--", "true"],
                                      ["--duration", "nan", "run", "--", "true"],
                                      ["--duration", "inf", "run", "--", "true"],
                                      ["attach", "99999999999999999999"]])
    def test_out_of_range_options(self, args):
        r = denet(*args)
        assert r.returncode == 2, r.stderr
        assert "error" in r.stderr and "Traceback" not in r.stderr

    def test_format_needs_out_and_json_needs_jsonl(self, tmp_path):
        r = denet("--format", "csv", "run", "--", "true")
        assert r.returncode == 2 and "--format sets the format of the --out file" in r.stderr
        r = denet("--json", "--out", str(tmp_path / "x.csv"), "run", "--", "true")
        assert r.returncode == 2 and "needs --out in jsonl format" in r.stderr
        assert not (tmp_path / "x.csv").exists()

    def test_version(self):
        import denet as pkg
        r = denet("--version")
        assert r.returncode == 0
        assert r.stdout.strip() == f"denet {pkg.__version__}"
        try:
            from importlib.metadata import version
            installed = version("denet")
        except Exception:  # not installed (PYTHONPATH only)
            return
        assert installed == pkg.__version__

    def test_help(self):
        r = denet("--help")
        assert r.returncode == 0
        for opt in ("--json", "--out", "--interval", "--max-interval", "--duration", "--exclude-children",
                    "--since-process-start", "--quiet", "--stats", "--enable-ebpf", "--no-update"):
            assert opt in r.stdout


# ------------------------------------------------------------ with the extension


class TestRun:
    def test_exit_codes(self, ext):
        assert denet("--quiet", "run", "--", PY, "-c", "pass").returncode == 0
        assert denet("--quiet", "run", "--", PY, "-c", "import sys; sys.exit(7)").returncode == 7
        r = denet("--quiet", "run", "--", PY, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)")
        assert r.returncode == 128 + signal.SIGKILL

    def test_missing_command(self, ext):
        r = denet("run", "--", "/nonexistent/denet-no-such-program")
        assert r.returncode == 127
        assert "not found" in r.stderr

    def test_unwritable_out_is_not_command_not_found(self, ext, tmp_path):
        r = denet("--out", str(tmp_path / "no-such-dir" / "x.jsonl"), "run", "--", "true")
        assert r.returncode == 1
        assert "--out" in r.stderr and "not found" not in r.stderr

    def test_not_executable(self, ext, tmp_path):
        script = tmp_path / "script.sh"
        script.write_text("#!/bin/sh\nexit 0\n")
        script.chmod(0o644)
        r = denet("run", "--", str(script))
        assert r.returncode == 126

    def test_options_after_subcommand(self, ext):
        r = denet("run", "--json", "--interval", "50", "--", PY, "-c", "import time; time.sleep(0.3)")
        assert r.returncode == 0
        assert json.loads(r.stdout.splitlines()[-1])["kind"] == "summary"

    def test_child_output_not_lost(self, ext):
        r = denet("--quiet", "run", "--", PY, "-c", "import sys; print('child says hi'); print('oops', file=sys.stderr)")
        assert r.returncode == 0
        assert "child says hi" in r.stdout
        assert "oops" in r.stderr

    def test_json_lines(self, ext):
        r = denet("--json", "--interval", "50", "run", "--", PY, "-c",
                  "import time; print('child output'); time.sleep(0.5)")
        assert r.returncode == 0, r.stderr
        lines = r.stdout.splitlines()
        records = [json.loads(x) for x in lines]  # every stdout line is JSON
        kinds = [x["kind"] for x in records]
        assert kinds.count("summary") == 1 and kinds[-1] == "summary"
        assert kinds.count("tree") >= 3
        assert records[-1]["sample_count"] >= 3
        assert "child output" in r.stderr  # with --json the command's stdout goes to stderr
        assert "Max processes" not in r.stderr  # no table with --json

    def test_summary_table_on_stderr(self, ext):
        r = denet("--interval", "50", "run", "--", PY, "-c",
                  "import subprocess; ps = [subprocess.Popen(['sleep', '1']) for _ in range(3)]; [p.wait() for p in ps]")
        assert r.returncode == 0
        line = [x for x in r.stderr.splitlines() if "Max processes" in x][0]
        assert int(line.split()[-1]) == 4  # the command and its three sleeps (upstream said 1)
        assert "\r" not in r.stderr  # not a terminal: no status line

    def test_out_and_stats(self, ext, tmp_path):
        out, stats = tmp_path / "run.jsonl", tmp_path / "s.json"
        r = denet("--quiet", "--interval", "50", "--out", str(out), "--stats", str(stats), "run", "--",
                  PY, "-c", "import time; time.sleep(0.5)")
        assert r.returncode == 0, r.stderr
        assert r.stderr == ""
        kinds = [json.loads(x)["kind"] for x in out.read_text().splitlines()]
        assert kinds[0] == "metadata" and "tree" in kinds and kinds[-1] == "summary"
        written = json.loads(stats.read_text())
        assert written["sample_count"] >= 3
        assert written["sample_count"] == kinds.count("tree")
        r2 = denet("--json", "stats", str(out))
        assert r2.returncode == 0
        from_file = json.loads(r2.stdout)
        assert from_file["sample_count"] == written["sample_count"]
        assert from_file["total_cpu_time_secs"] == written["total_cpu_time_secs"]  # exact, from the summary line
        assert "estimated" not in from_file

    @pytest.mark.parametrize("name,fmt", [("run.csv", "csv"), ("run.json", "json"), ("run.jsonl", "jsonl"),
                                          ("run.data", "jsonl")])
    def test_out_format_from_the_extension(self, ext, tmp_path, name, fmt):
        out = tmp_path / name
        r = denet("--quiet", "--interval", "50", "--out", str(out), "--stats", str(tmp_path / "s.json"),
                  "run", "--", PY, "-c", "import time; time.sleep(0.4)")
        assert r.returncode == 0, r.stderr
        self.check_format(out, fmt, tmp_path)

    def test_format_option_wins(self, ext, tmp_path):
        out = tmp_path / "run.log"
        r = denet("--quiet", "--interval", "50", "--out", str(out), "--stats", str(tmp_path / "s.json"),
                  "run", "--format", "csv", "--", PY, "-c", "import time; time.sleep(0.4)")
        assert r.returncode == 0, r.stderr
        self.check_format(out, "csv", tmp_path)

    @staticmethod
    def check_format(out, fmt, tmp_path):
        from denet import _formats
        from denet.analysis import load_metrics
        text = out.read_text()
        first = text.lstrip()[:1]
        assert {"csv": first == "t", "json": first == "[", "jsonl": first == "{"}[fmt], text[:80]
        assert _formats.read_file(out).format == fmt
        written = json.loads((tmp_path / "s.json").read_text())
        samples = load_metrics(out)
        assert len(samples) == written["sample_count"] >= 3
        r = denet("--json", "stats", str(out))
        assert r.returncode == 0, r.stderr
        from_file = json.loads(r.stdout)
        assert from_file["sample_count"] == written["sample_count"]
        assert from_file["peak_mem_rss_kb"] == written["peak_mem_rss_kb"]

    def test_exclude_children(self, ext):
        r = denet("--json", "--exclude-children", "--interval", "50", "run", "--", PY, "-c",
                  "import time; time.sleep(0.3)")
        assert r.returncode == 0
        records = [json.loads(x) for x in r.stdout.splitlines()]
        samples = [x for x in records if x["kind"] == "sample"]
        assert samples and all("aggregated" not in x for x in samples)
        assert records[-1]["max_processes"] == 1

    def test_duration_stops_command(self, ext, tmp_path):
        pidfile = tmp_path / "pid"
        stats = tmp_path / "s.json"
        code = f"import os, time; open({str(pidfile)!r}, 'w').write(str(os.getpid())); time.sleep(30)"
        t0 = time.monotonic()
        r = denet("--quiet", "--duration", "1", "--stats", str(stats), "run", "--", PY, "-c", code, timeout=30)
        wall = time.monotonic() - t0
        assert wall < 10
        assert r.returncode == 128 + signal.SIGTERM
        assert pid_gone(int(pidfile.read_text()))
        assert json.loads(stats.read_text())["sample_count"] >= 1

    def test_duration_sleep_30(self, ext):
        t0 = time.monotonic()
        r = denet("--quiet", "--duration", "1", "run", "--", "sleep", "30", timeout=30)
        assert time.monotonic() - t0 < 10
        assert r.returncode == 128 + signal.SIGTERM

    def test_sigterm_ignored_gets_sigkill(self, ext, tmp_path):
        pidfile = tmp_path / "pid"
        code = ("import os, signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                f"open({str(pidfile)!r}, 'w').write(str(os.getpid())); time.sleep(30)")
        t0 = time.monotonic()
        r = denet("--quiet", "--duration", "0.5", "run", "--", PY, "-c", code, timeout=30)
        assert time.monotonic() - t0 < 10
        assert r.returncode == 128 + signal.SIGKILL
        assert pid_gone(int(pidfile.read_text()))

    def test_ctrl_c_kills_command_and_writes_summary(self, ext, tmp_path):
        pidfile, grandpidfile, stats = tmp_path / "pid", tmp_path / "gpid", tmp_path / "s.json"
        code = (
            "import os, subprocess, time\n"
            f"g = subprocess.Popen(['sleep', '30'])\n"
            f"open({str(grandpidfile)!r}, 'w').write(str(g.pid))\n"
            f"open({str(pidfile)!r}, 'w').write(str(os.getpid()))\n"
            "time.sleep(30)\n"
        )
        proc = spawn_denet("--json", "--interval", "50", "--stats", str(stats), "run", "--", PY, "-c", code)
        try:
            pid = int(wait_for_file(pidfile))
            gpid = int(wait_for_file(grandpidfile))
            # denet is sampling (it has written a sample that shows the grandchild)
            while True:
                line = proc.stdout.readline()
                assert line, "denet ended before sampling the grandchild"
                if gpid in [c["pid"] for c in json.loads(line).get("children", [])]:
                    break
            t0 = time.monotonic()
            proc.send_signal(signal.SIGINT)
            proc.communicate(timeout=20)
            assert time.monotonic() - t0 < 10
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == 128 + signal.SIGTERM
        assert pid_gone(pid), "command left running after Ctrl-C"
        assert pid_gone(gpid), "the command's child left running after Ctrl-C"
        assert json.loads(stats.read_text())["sample_count"] >= 1


class TestAttach:
    def test_attach_until_exit(self, ext):
        target = subprocess.Popen(["sleep", "1.5"])
        try:
            r = denet("--json", "--interval", "50", "attach", str(target.pid), timeout=30)
        finally:
            target.wait()
        assert r.returncode == 0, r.stderr
        records = [json.loads(x) for x in r.stdout.splitlines()]
        assert records[-1]["kind"] == "summary"
        assert records[-1]["sample_count"] >= 3

    def test_attach_duration_never_kills(self, ext):
        target = subprocess.Popen(["sleep", "30"])
        try:
            t0 = time.monotonic()
            r = denet("--quiet", "--duration", "1", "attach", str(target.pid), timeout=30)
            assert time.monotonic() - t0 < 10
            assert r.returncode == 0, r.stderr
            assert target.poll() is None, "attach must not kill the process it watches"
        finally:
            target.kill()
            target.wait()

    def test_attach_ctrl_c_detaches(self, ext, tmp_path):
        target = subprocess.Popen(["sleep", "30"])
        stats = tmp_path / "s.json"
        try:
            proc = spawn_denet("--json", "--stats", str(stats), "attach", str(target.pid))
            kinds = []
            while "tree" not in kinds:  # attached and sampling
                line = proc.stdout.readline()
                assert line, "denet ended before its first sample"
                kinds.append(json.loads(line)["kind"])
            proc.send_signal(signal.SIGINT)
            proc.communicate(timeout=20)
            assert proc.returncode == 0
            assert target.poll() is None
            assert json.loads(stats.read_text())["sample_count"] >= 1
        finally:
            target.kill()
            target.wait()

    def test_unknown_pid(self, ext):
        r = denet("attach", "999999999")
        assert r.returncode == 1
        assert "no process" in r.stderr


def test_json_streams_from_the_monitor_with_no_temporary_file(tmp_path):
    # Layout issue: --json hands stdout's descriptor to the monitor's writer; no temp
    # file, no copying thread. Exactly one summary line, last; every line is JSON.
    env = dict(os.environ, TMPDIR=str(tmp_path))
    r = subprocess.run([PY, "-m", "denet", "--json", "--interval", "20", "run", "--", PY, "-c",
                        "import time; time.sleep(0.3)"], capture_output=True, text=True,
                       timeout=60, env=env)
    assert r.returncode == 0, r.stderr
    records = [json.loads(x) for x in r.stdout.splitlines()]
    kinds = [x["kind"] for x in records]
    assert kinds[0] == "metadata" and kinds[-1] == "summary" and kinds.count("summary") == 1
    assert kinds.count("tree") >= 3
    assert list(tmp_path.iterdir()) == []
