"""execute_with_monitoring: subprocess.Popen + ProcessMonitor.from_pid."""

import json
import signal
import subprocess
import sys
import time

import pytest

from denet.execute import execute_with_monitoring


@pytest.fixture
def ext():
    import denet._denet
    return denet._denet


def py(code):
    return [sys.executable, "-c", code]


def pid_gone(pid, timeout=5.0):
    """True once pid no longer exists (or is a zombie nobody reaped yet)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
            if state in ("Z", "X"):
                return True
        except (FileNotFoundError, ProcessLookupError):
            return True
        time.sleep(0.05)
    return False


# ------------------------------------------------------------ argument checks (no extension needed)


class TestValidation:
    @pytest.mark.parametrize("cmd", [[], "", "   ", ()])
    def test_empty_cmd(self, cmd):
        with pytest.raises(ValueError, match="empty"):
            execute_with_monitoring(cmd)

    @pytest.mark.parametrize("cmd", [None, 42, ["echo", 3], {"a": 1}])
    def test_cmd_type(self, cmd):
        with pytest.raises(TypeError):
            execute_with_monitoring(cmd)

    @pytest.mark.parametrize("kw", [{"base_interval_ms": 0}, {"base_interval_ms": -5}, {"max_interval_ms": 0}])
    def test_intervals(self, kw):
        with pytest.raises(ValueError, match="interval"):
            execute_with_monitoring(["true"], **kw)

    def test_interval_type(self):
        with pytest.raises(TypeError):
            execute_with_monitoring(["true"], base_interval_ms="100")

    @pytest.mark.parametrize("timeout", [0, -1, -0.5, float("nan"), float("inf"), float("-inf")])
    def test_timeout(self, timeout, tmp_path):
        marker = tmp_path / "ran"
        with pytest.raises(ValueError, match="timeout"):
            execute_with_monitoring(["touch", str(marker)], timeout=timeout)
        assert not marker.exists(), "the command was started despite the bad timeout"

    @pytest.mark.parametrize("kw", [{"base_interval_ms": 2**31}, {"max_interval_ms": 2**64}])
    def test_interval_too_large(self, kw, tmp_path):
        marker = tmp_path / "ran"
        with pytest.raises(ValueError, match="at most 2147483647 ms"):
            execute_with_monitoring(["touch", str(marker)], **kw)
        assert not marker.exists()

    def test_output_format(self):
        with pytest.raises(ValueError, match="output_format"):
            execute_with_monitoring(["true"], output_format="xml")


# ------------------------------------------------------------ with the extension


class TestExecute:
    def test_basic(self, ext, tmp_path):
        out = tmp_path / "m.jsonl"
        code, monitor = execute_with_monitoring(
            py("import time; print('hello'); time.sleep(0.5)"),
            output_file=str(out), base_interval_ms=50, max_interval_ms=100, quiet=True,
        )
        assert code == 0
        samples = monitor.get_samples()
        assert len(samples) >= 3
        assert all("aggregated" in s for s in samples)  # tree samples by default
        assert samples[0]["aggregated"]["mem_rss_kb"] > 0
        assert out.exists() and out.stat().st_size > 0
        summary = monitor.get_summary()
        assert summary["sample_count"] >= 3
        assert monitor.is_running() is False

    def test_exit_codes(self, ext):
        code, _ = execute_with_monitoring(py("import sys; sys.exit(3)"), quiet=True)
        assert code == 3
        code, _ = execute_with_monitoring(py("import os, signal; os.kill(os.getpid(), signal.SIGKILL)"), quiet=True)
        assert code == -signal.SIGKILL
        code, _ = execute_with_monitoring(["false"], quiet=True, pause_for_attachment=False)
        assert code == 1

    def test_string_command(self, ext):
        code, monitor = execute_with_monitoring(f"{sys.executable} -c 'import time; time.sleep(0.2)'", quiet=True)
        assert code == 0
        assert monitor is not None

    def test_missing_executable(self, ext):
        with pytest.raises(FileNotFoundError):
            execute_with_monitoring(["/nonexistent/denet-no-such-program"])

    def test_redirect_to_files(self, ext, tmp_path):
        so, se = tmp_path / "out.txt", tmp_path / "err.txt"
        code, _ = execute_with_monitoring(
            py("import sys; print('to stdout'); print('to stderr', file=sys.stderr)"),
            stdout_file=str(so), stderr_file=str(se),
        )
        assert code == 0
        assert so.read_text() == "to stdout\n"
        assert se.read_text() == "to stderr\n"

    def test_output_drained_to_our_streams(self, ext, capfd):
        code, _ = execute_with_monitoring(py("import sys; print('drained out'); print('drained err', file=sys.stderr)"))
        assert code == 0
        out, err = capfd.readouterr()
        assert "drained out" in out
        assert "drained err" in err

    def test_quiet_drops_drained_output(self, ext, capfd):
        code, _ = execute_with_monitoring(py("print('should not show')"), quiet=True)
        assert code == 0
        out, _ = capfd.readouterr()
        assert "should not show" not in out

    def test_chatty_child_does_not_deadlock(self, ext):
        # 8 MiB on each pipe, far more than a pipe buffer holds
        code = (
            "import sys\n"
            "chunk = 'x' * 65535 + '\\n'\n"
            "for _ in range(128):\n"
            "    sys.stdout.write(chunk); sys.stderr.write(chunk)\n"
        )
        t0 = time.monotonic()
        rc, _ = execute_with_monitoring(py(code), quiet=True, timeout=60)
        assert rc == 0
        assert time.monotonic() - t0 < 60

    def test_timeout_kills_process_group(self, ext, tmp_path):
        pidfile = tmp_path / "grandchild.pid"
        code = (
            "import subprocess, time\n"
            f"p = subprocess.Popen(['sleep', '30'])\n"
            f"open({str(pidfile)!r}, 'w').write(str(p.pid))\n"
            "time.sleep(30)\n"
        )
        t0 = time.monotonic()
        with pytest.raises(subprocess.TimeoutExpired):
            execute_with_monitoring(py(code), timeout=1.5, quiet=True)
        assert time.monotonic() - t0 < 10
        deadline = time.monotonic() + 5
        while not pidfile.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        grandchild = int(pidfile.read_text())
        assert pid_gone(grandchild), "the grandchild in the command's process group survived the timeout"

    def test_timeout_terminates_before_it_kills(self, ext, tmp_path):
        # the policy of denet._procgroup: SIGTERM to the group, SIGKILL after the grace
        # period; a command that cleans up on SIGTERM gets to do so
        # (sh sets its trap within milliseconds, long before the timeout)
        marker = tmp_path / "cleaned-up"
        script = f"trap 'echo bye > {marker}; exit 0' TERM; sleep 30 & wait"
        with pytest.raises(subprocess.TimeoutExpired):
            execute_with_monitoring(["sh", "-c", script], timeout=1.0, quiet=True)
        assert marker.read_text() == "bye\n"

    def test_timeout_kills_what_ignores_sigterm(self, ext, tmp_path):
        pidfile = tmp_path / "pid"
        code = ("import os, signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                f"open({str(pidfile)!r}, 'w').write(str(os.getpid())); time.sleep(30)")
        with pytest.raises(subprocess.TimeoutExpired):
            execute_with_monitoring(py(code), timeout=1.0, quiet=True)
        assert pid_gone(int(pidfile.read_text()))

    def test_without_pausing(self, ext):
        code, monitor = execute_with_monitoring(
            py("import time; time.sleep(0.3)"), pause_for_attachment=False, base_interval_ms=50, quiet=True
        )
        assert code == 0
        assert len(monitor.get_samples()) > 0

    @pytest.mark.parametrize("since_start", [False, True], ids=["relative", "since-process-start"])
    def test_since_process_start(self, ext, tmp_path, since_start):
        # The workload reads 2 MiB, then reports its own rchar and minor faults (the
        # kernel's, since it started) and idles so that samples follow. (Relative counters
        # of a process that predates monitoring: test_ground_truth.py's attach test.)
        data = tmp_path / "data"
        data.write_bytes(b"z" * (2 << 20))
        report = tmp_path / "report"
        code = (f"import time\nopen({str(data)!r}, 'rb').read()\n"
                "io = dict(l.split(': ') for l in open('/proc/self/io').read().splitlines())\n"
                "stat = open('/proc/self/stat').read().rsplit(')', 1)[1].split()\n"
                f"open({str(report)!r}, 'w').write('%s %s' % (io['rchar'], stat[7]))\n"
                "time.sleep(0.5)\n")
        code, monitor = execute_with_monitoring(
            py(code), since_process_start=since_start, include_children=False, base_interval_ms=50,
            quiet=True,
        )
        assert code == 0
        rchar, minflt = map(int, report.read_text().split())
        samples = monitor.get_samples()
        first, last = samples[0], samples[-1]
        if since_start:
            # from the process's start: the faults of its fork and exec, before anything
            # could attach, are in the first sample, and the last holds all it read (the
            # report's own read of /proc/self/io comes after its figure)
            assert first["page_faults_cached"] > 0
            assert rchar <= last["syscall_read_bytes"] <= rchar + 4096, (rchar, last)
            assert minflt <= last["page_faults_cached"] <= minflt + 200, (minflt, last)
        else:
            # from the first read, or from its start when that was within a clock tick of
            # the attach (the collector's rule for processes that start under observation)
            assert 2 << 20 <= last["syscall_read_bytes"] <= rchar + 4096, (rchar, last)
            assert last["page_faults_cached"] <= minflt + 200, (minflt, last)
        assert rchar >= 2 << 20

    def test_flat_samples_without_children(self, ext):
        code, monitor = execute_with_monitoring(
            py("import subprocess, time; subprocess.Popen(['sleep', '0.2']); time.sleep(0.4)"),
            include_children=False, base_interval_ms=50, quiet=True,
        )
        assert code == 0
        samples = monitor.get_samples()
        assert samples and all("aggregated" not in s and "cpu_usage" in s for s in samples)
        assert monitor.get_summary()["max_processes"] == 1

    def test_children_counted(self, ext):
        code, monitor = execute_with_monitoring(
            py("import subprocess; ps = [subprocess.Popen(['sleep', '1']) for _ in range(3)]; [p.wait() for p in ps]"),
            base_interval_ms=50, quiet=True,
        )
        assert code == 0
        assert monitor.get_summary()["max_processes"] == 4
        assert monitor.get_summary()["processes_seen"] == 4

    def test_output_file_with_metadata(self, ext, tmp_path):
        out = tmp_path / "run.jsonl"
        code, _ = execute_with_monitoring(
            py("import time; time.sleep(0.3)"), output_file=str(out), write_metadata=True,
            base_interval_ms=50, quiet=True,
        )
        assert code == 0
        kinds = [json.loads(line)["kind"] for line in out.read_text().splitlines()]
        assert kinds[0] == "metadata"
        assert "tree" in kinds
        from denet._summary import generate_summary_from_file

        assert generate_summary_from_file(str(out))["sample_count"] == kinds.count("tree")

    @pytest.mark.parametrize("fmt", ["jsonl", "json", "csv"])
    def test_output_formats(self, ext, tmp_path, fmt):
        out = tmp_path / f"m.{fmt}"
        code, _ = execute_with_monitoring(
            py("import time; time.sleep(0.3)"), output_file=str(out), output_format=fmt,
            base_interval_ms=50, quiet=True,
        )
        assert code == 0
        text = out.read_text()
        assert "cpu_usage" in text
        if fmt == "json":
            assert isinstance(json.loads(text), (list, dict))

    def test_cpu_time_of_busy_child(self, ext, tmp_path):
        # Attached (Popen + from_pid), so no rusage floor: the sampled sum against the CPU
        # the command reports itself: the loop's, and its whole life's.
        err = tmp_path / "cpu"
        code, monitor = execute_with_monitoring(
            py("import sys, time\nt = time.process_time()\nwhile time.process_time() - t < 0.5: pass\n"
               "sys.stderr.write('%f %f' % (time.process_time() - t, time.process_time()))"),
            base_interval_ms=50, quiet=True, stderr_file=str(err),
        )
        assert code == 0
        loop, whole = map(float, err.read_text().split())
        total = monitor.get_summary()["total_cpu_time_secs"]
        # the read at exit can lose a sampling interval's tail to the reaping Popen.wait()
        assert loop - 0.08 <= total <= whole + 0.05, (total, loop, whole)
        assert monitor._debug()["sampled_cpu_time_secs"] == total
