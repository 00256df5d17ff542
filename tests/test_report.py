"""The HTML report (denet.report), its CLI doors (`denet report`, `denet run --html`),
ProcessMonitor._repr_html_/to_dataframe/plot, checked against runs whose figures are
known: synthetic samples for exact arithmetic, real monitored workloads for the whole
path."""
import json
import os
import re
import subprocess
import sys
from html.parser import HTMLParser

import pytest

import denet
from denet import report

from conftest import PY, py_cmd, require_module

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DENET = [PY, "-m", "denet"]


class Page(HTMLParser):
    """The bits of a report the tests look at."""

    def __init__(self, text):
        super().__init__()
        self.tags, self.attrs, self.tables, self.charts = [], [], [], {}
        self._table = self._row = self._cell = None
        self._chart = None
        self.svg_text = {}
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        self.attrs.append((tag, attrs))
        if tag == "table":
            self._table = {"class": attrs.get("class"), "rows": []}
            self.tables.append(self._table)
        elif tag == "tr" and self._table is not None:
            self._row = []
            self._table["rows"].append(self._row)
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []
        elif tag == "svg":
            self._chart = attrs.get("data-chart")
            self.charts[self._chart] = attrs
            self.svg_text[self._chart] = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "table":
            self._table = None
        elif tag == "svg":
            self._chart = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        if self._chart is not None:
            self.svg_text[self._chart].append(data)

    def table(self, cls):
        return next(t["rows"] for t in self.tables if t["class"] == cls)

    def column(self, cls, name):
        rows = self.table(cls)
        i = rows[0].index(name)
        return [row[i] for row in rows[1:]]


def assert_self_contained(text):
    """No script, nothing fetched: the only URL is the SVG namespace."""
    assert "<script" not in text.lower()
    urls = set(re.findall(r"https?://[^\s\"'<>)]+", text))
    assert urls <= {"http://www.w3.org/2000/svg"}, urls
    assert not re.search(r"\s(src|href)\s*=", text), "external reference"
    assert "@import" not in text and "url(" not in text


# --------------------------------------------------------------------------
# synthetic runs: exact arithmetic


def tree_sample(ts, parent, children=(), **agg_extra):
    agg = {k: parent.get(k, 0) + sum(c[2].get(k, 0) for c in children)
           for k in ("cpu_usage", "mem_rss_kb", "disk_read_bytes", "disk_write_bytes", "thread_count")}
    agg.update(ts_ms=ts, process_count=1 + len(children), **agg_extra)
    return {"ts_ms": ts, "parent": dict(parent, ts_ms=ts),
            "children": [{"pid": pid, "command": cmd, "metrics": dict(m, ts_ms=ts)}
                         for pid, cmd, m in children],
            "aggregated": agg}


T0 = 1_700_000_000_000


def synthetic_run():
    """Parent 100 + child 200 (exits after 2 s); 0.5 s between samples."""
    samples = []
    for i in range(9):
        ts = T0 + 500 * i
        parent = {"cpu_usage": 50.0, "mem_rss_kb": 100 * 1024 + i * 1024, "disk_write_bytes": i * 1_000_000,
                  "thread_count": 1}
        children = []
        if i <= 4:
            children.append((200, "worker --fast", {"cpu_usage": 100.0, "mem_rss_kb": 300 * 1024,
                                                    "disk_write_bytes": i * 2_000_000, "thread_count": 2}))
        samples.append(tree_sample(ts, parent, children))
    metadata = {"pid": 100, "cmd": ["python", "main.py"], "executable": "/usr/bin/python3", "t0_ms": T0}
    return samples, metadata


def test_series_time_in_seconds_memory_in_mib_and_io_that_survives_exits():
    samples, metadata = synthetic_run()
    s = report._series(samples, metadata["t0_ms"], metadata["pid"])
    assert s.t == [0.5 * i for i in range(9)]
    # cumulative disk: the child's 8 MB stay counted after it exits at i=4
    assert s.disk_write[4] == 4_000_000 + 8_000_000
    assert s.disk_write[8] == 8_000_000 + 8_000_000
    assert s.procs == [2] * 5 + [1] * 4
    text = report.render_html(samples, None, metadata)
    page = Page(text)
    mem = " ".join(page.svg_text["memory"])
    assert "MiB" in mem and "KiB" not in mem
    # time ticks are seconds since the start (0 to 4 s), never epoch milliseconds
    for chart in ("cpu", "memory", "disk", "processes"):
        svg = re.search(rf'<svg class="chart" data-chart="{chart}".*?</svg>', text).group(0)
        ticks = [float(t) for t in re.findall(r'text-anchor="middle">([\d.]+)</text>', svg)]
        assert ticks[0] == 0 and 3.5 <= ticks[-1] <= 4, (chart, ticks)
        assert "time since start (s)" in svg


def test_process_rows_derived_from_samples_estimate_cpu_and_keep_peaks():
    samples, metadata = synthetic_run()
    rows, derived = report.process_rows(samples, None, metadata)
    assert derived is True
    by_pid = {r["pid"]: r for r in rows}
    # 8 intervals of 0.5 s at 50 % for the parent; 4 at 100 % for the child
    assert by_pid[100]["cpu_secs"] == pytest.approx(2.0)
    assert by_pid[200]["cpu_secs"] == pytest.approx(2.0)
    assert by_pid[100]["command"] == "python main.py" and by_pid[200]["command"] == "worker --fast"
    assert by_pid[200]["peak_rss_kb"] == 300 * 1024 and by_pid[100]["peak_rss_kb"] == 108 * 1024
    assert by_pid[200]["disk_write_bytes"] == 8_000_000
    page = Page(report.render_html(samples, None, metadata))
    procs = page.table("procs")
    assert procs[0] == ["PID", "Command", "CPU (estimated)", "Peak RSS", "Disk read", "Disk written"]
    assert ["200", "worker --fast", "2.00 s", "300.0 MiB", "0 B", "7.6 MiB"] in procs[1:]


def test_process_rows_name_a_child_by_its_command_after_exec():
    child = {"cpu_usage": 0.0, "mem_rss_kb": 1000}
    samples = [tree_sample(T0, {"cpu_usage": 1.0}, [(7, "sh -c work", child)]),
               tree_sample(T0 + 100, {"cpu_usage": 1.0}, [(7, "work --hard", child)])]
    rows, _ = report.process_rows(samples, None, {"pid": 1, "cmd": ["sh", "-c", "work"]})
    assert {r["pid"]: r["command"] for r in rows} == {1: "sh -c work", 7: "work --hard"}


def test_process_rows_use_the_summarys_processes_when_present():
    samples, metadata = synthetic_run()
    summary = denet.generate_summary_from_metrics_json(samples, 4.0)
    summary["processes"] = [
        {"pid": 100, "ppid": 1, "command": "python main.py", "cpu_time_secs": 2.25, "peak_rss_kb": 110 * 1024,
         "disk_read_bytes": 0, "disk_write_bytes": 8_000_000, "exit_code": 0},
        {"pid": 200, "ppid": 100, "command": "worker --fast", "cpu_time_secs": 3.5, "peak_rss_kb": 3 << 20,
         "disk_read_bytes": 4096, "disk_write_bytes": 8_000_000, "exit_code": -9},
        {"pid": 300, "ppid": 200, "command": "short-lived", "cpu_time_secs": 0.01, "peak_rss_kb": 900,
         "disk_read_bytes": 0, "disk_write_bytes": 0, "exit_code": 1},
    ]
    rows, derived = report.process_rows(samples, summary, metadata)
    assert derived is False
    assert [r["pid"] for r in rows] == [200, 100, 300]  # heaviest CPU first; 300 was never sampled
    procs = Page(report.render_html(samples, summary, metadata)).table("procs")
    assert procs[0] == ["PID", "PPID", "Command", "CPU", "Peak RSS", "Disk read", "Disk written", "Exit"]
    assert procs[1] == ["200", "100", "worker --fast", "3.50 s", "3.00 GiB", "4.0 KiB", "7.6 MiB", "-9"]
    assert procs[3][2] == "short-lived"


def test_summary_table_and_tiles_format_the_summary():
    samples, metadata = synthetic_run()
    summary = denet.generate_summary_from_metrics_json(samples, 4.0)
    summary.update(total_syscalls=123456, syscalls_by_category={"time": 100000, "file_io": 23456},
                   total_offcpu_time_secs=1.5)
    page = Page(report.render_html(samples, summary, metadata))
    rows = dict(r for r in page.table("summary") if len(r) == 2)
    assert rows["Wall time"] == "4.00 s"
    assert rows["Peak RSS of one process"] == "300.0 MiB"
    assert rows["System calls"] == "123,456"
    assert rows["Off-CPU time"] == "1.50 s"
    html = denet.SummaryTable(summary)._repr_html_()
    assert "123,456" in html and "Peak RSS" in html


def test_long_runs_are_thinned_but_keep_their_peaks():
    xs = [i / 10 for i in range(20_000)]
    ys = [1.0] * 20_000
    ys[12_345] = 99.0
    rx, ry = report._reduce(xs, ys)
    assert len(rx) <= report.MAX_CHART_POINTS
    assert 99.0 in ry and rx == sorted(rx)


def test_empty_and_single_sample_runs_still_render():
    page = report.render_html([], {"total_time_secs": 0, "sample_count": 0}, None)
    assert "No samples were recorded" in page
    samples, metadata = synthetic_run()
    one = Page(report.render_html(samples[:1], None, metadata))
    assert "cpu" in one.charts  # a single point is drawn as a dot


# --------------------------------------------------------------------------
# flame graph from folded stacks


FOLDED = """\
main;read_config;read;io_schedule 3000000
main;serve;accept;io_schedule 5000000
main;serve;lock<std::mutex>;futex_wait 2000000
main;sleep;hrtimer_nanosleep 10000000
not a stack line
"""


def test_flame_graph_widths_are_shares_of_the_total():
    stacks = report.parse_folded(FOLDED)
    assert sum(stacks.values()) == 20_000_000 and len(stacks) == 4
    assert report.parse_folded({"a;b": 5, ("a", "c"): 5}) == {("a", "b"): 5.0, ("a", "c"): 5.0}
    svg = report.flame_graph_svg(FOLDED, width=1002)
    rects = re.findall(r'<title>([^<]*)</title><rect x="([\d.]+)" y="(\d+)" width="([\d.]+)"', svg)
    frames = {title.split(" (")[0]: (float(x), int(y), float(w)) for title, x, y, w in rects}
    assert frames["all"][2] == pytest.approx(1000)
    assert frames["main"][2] == pytest.approx(1000)
    assert frames["serve"][2] == pytest.approx(350)          # 7 of 20 ms
    assert frames["sleep"][2] == pytest.approx(500)
    assert frames["hrtimer_nanosleep"][1] < frames["sleep"][1] < frames["main"][1]  # root at the bottom
    assert "lock&lt;std::mutex&gt;" in svg and "lock<std" not in svg  # escaped
    assert "serve (7.0 ms, 35.0 %)" in svg
    assert "20.0 ms in 4 stacks" in svg
    assert "no off-CPU stacks recorded" in report.flame_graph_svg("")


def test_off_cpu_section_appears_only_with_off_cpu_data():
    samples, metadata = synthetic_run()
    assert "Off-CPU time" not in report.render_html(samples, None, metadata)
    page = report.render_html(samples, None, metadata, offcpu_folded=FOLDED)
    assert 'data-chart="flame"' in page
    summary = denet.generate_summary_from_metrics_json(samples, 4.0)
    summary["total_offcpu_time_secs"] = 0.5
    page = report.render_html(samples, summary, metadata)
    assert "No stacks were recorded" in page and 'data-chart="flame"' not in page


# --------------------------------------------------------------------------
# real runs


WORKLOAD = """
    import os, subprocess, sys, time
    out = sys.argv[1]
    blob = bytearray(b"x") * (64 << 20)
    subprocess.run([sys.executable, "-c",
                    "import time\\nt = time.process_time()\\nwhile time.process_time() - t < 0.4: pass"])
    with open(out, "wb") as f:
        f.write(b"\\1" * (8 << 20))
        f.flush()
        os.fsync(f.fileno())
    os.unlink(out)
    time.sleep(0.3)
"""


@pytest.fixture
def recorded(tmp_path):
    """A real run recorded with output_file (eBPF when this machine allows it)."""
    os.makedirs(os.path.join(ROOT, "build"), exist_ok=True)
    target = os.path.join(ROOT, "build", f"report-test-{os.getpid()}.bin")  # a real disk, not tmpfs
    path = tmp_path / "run.jsonl"
    mon = denet.ProcessMonitor(py_cmd(WORKLOAD) + [target], base_interval_ms=50, max_interval_ms=100,
                               output_file=str(path), write_metadata=True, quiet=True,
                               enable_ebpf=denet.ebpf_available()[0])
    assert mon.run() == 0
    return mon, path


def test_report_of_a_real_run(recorded):
    mon, path = recorded
    text = report.render_html(mon.get_samples(), mon.get_summary(), mon.get_metadata(), title="real")
    assert_self_contained(text)
    page = Page(text)
    assert {"cpu", "memory", "disk", "processes"} <= set(page.charts)
    summary = dict(r for r in page.table("summary") if len(r) == 2)
    peak = float(summary["Peak RSS of one process"].split()[0])
    assert 64 <= peak <= 400  # the 64 MiB bytearray, in MiB
    procs = page.table("procs")
    assert procs[1][0] == f"{mon.get_pid():,}" or any(r[0] == f"{mon.get_pid():,}" for r in procs[1:])
    child_pids = {c["pid"] for s in mon.get_samples() for c in s["children"]}
    assert child_pids and {f"{p:,}" for p in child_pids} <= {r[0] for r in procs[1:]}
    disk_ticks = " ".join(page.svg_text["disk"])
    assert "MiB" in disk_ticks  # 8 MiB written
    if denet.ebpf_available()[0]:
        assert "Top system calls" in text and "System calls" in summary


def test_load_run_reads_what_the_monitor_wrote(recorded):
    mon, path = recorded
    run = report.load_run(path)
    assert len(run.samples) == len(mon.get_samples())
    assert run.metadata["pid"] == mon.get_pid()
    # the file's summary record: exact values, not estimates
    assert run.summary["total_cpu_time_secs"] == pytest.approx(mon.get_summary()["total_cpu_time_secs"])
    assert "estimated" not in run.summary


def test_cli_report_writes_the_page(recorded, tmp_path):
    mon, path = recorded
    out = tmp_path / "run.html"
    folded = tmp_path / "offcpu.folded"
    folded.write_text(FOLDED)
    r = subprocess.run(DENET + ["report", str(path), "-o", str(out), "--offcpu-folded", str(folded)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert f"HTML report written to {out}" in r.stderr
    text = out.read_text()
    assert_self_contained(text)
    assert 'data-chart="cpu"' in text and 'data-chart="flame"' in text
    # default name: the input's, with .html
    r = subprocess.run(DENET + ["report", str(path)], capture_output=True, text=True)
    assert r.returncode == 0 and (tmp_path / "run.html").exists()
    # `stats` takes --html too
    r = subprocess.run(DENET + ["stats", str(path), "--html", str(tmp_path / "stats.html")],
                       capture_output=True, text=True)
    assert r.returncode == 0 and "denet summary of" in r.stdout
    assert 'data-chart="cpu"' in (tmp_path / "stats.html").read_text()


def test_cli_report_errors_say_what_failed(tmp_path):
    missing = tmp_path / "missing.jsonl"
    r = subprocess.run(DENET + ["report", str(missing)], capture_output=True, text=True)
    assert r.returncode == 1
    assert f"denet: report: cannot read {missing}: No such file or directory" in r.stderr
    junk = tmp_path / "junk.jsonl"
    junk.write_text("not json\n")
    r = subprocess.run(DENET + ["report", str(junk)], capture_output=True, text=True)
    assert r.returncode == 1 and "no denet samples found" in r.stderr
    good = tmp_path / "good.jsonl"
    good.write_text(json.dumps(dict(synthetic_run()[0][0], kind="tree")) + "\n")
    r = subprocess.run(DENET + ["report", str(good), "-o", str(tmp_path / "no-dir" / "x.html")],
                       capture_output=True, text=True)
    assert r.returncode == 1 and "cannot write the HTML report" in r.stderr


def test_cli_run_html(tmp_path):
    out = tmp_path / "run.html"
    r = subprocess.run(DENET + ["--html", str(out), "run", "--", "sh", "-c", "sleep 0.3 & sleep 0.3; wait"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    text = out.read_text()
    assert_self_contained(text)
    page = Page(text)
    assert {"cpu", "memory", "processes"} <= set(page.charts)
    assert "denet run -- sh -c" in text
    assert "sleep 0.3" in page.column("procs", "Command")
    # the option after the sub-command, and with --out: the samples file is kept too
    jsonl = tmp_path / "kept.jsonl"
    r = subprocess.run(DENET + ["run", "--html", str(tmp_path / "b.html"), "--out", str(jsonl), "--", "true"],
                       capture_output=True, text=True)
    assert r.returncode == 0 and (tmp_path / "b.html").exists() and jsonl.exists()
    # the command's exit code wins over the report
    r = subprocess.run(DENET + ["run", "--html", str(tmp_path / "c.html"), "--", "sh", "-c", "exit 3"],
                       capture_output=True, text=True)
    assert r.returncode == 3 and (tmp_path / "c.html").exists()


def test_cli_report_of_a_csv_file_and_options_that_do_not_apply(tmp_path):
    csv_path = tmp_path / "run.csv"
    r = subprocess.run(DENET + ["--out", str(csv_path), "--html", str(tmp_path / "a.html"), "run", "--",
                                "sh", "-c", "sleep 0.3 & sleep 0.3; wait"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert csv_path.read_text().startswith("ts_ms,")  # the samples went to CSV as asked
    page = Page((tmp_path / "a.html").read_text())
    assert "sleep 0.3" in page.column("procs", "Command")
    # a CSV file has no summary record: the page says which figures are estimates
    summary = dict(r for r in page.table("summary") if len(r) == 2)
    assert "total_cpu_time_secs" in summary["Estimated from samples"]
    r = subprocess.run(DENET + ["report", str(csv_path), "-o", str(tmp_path / "b.html")],
                       capture_output=True, text=True)
    assert r.returncode == 0 and (tmp_path / "b.html").exists(), r.stderr
    for args, message in ((["--json", "report", str(csv_path)], "--json does not apply to report"),
                          (["--interval", "50", "report", str(csv_path)], "--interval applies to run and attach")):
        r = subprocess.run(DENET + args, capture_output=True, text=True)
        assert r.returncode == 2 and message in r.stderr, r.stderr


def test_monitor_repr_html_is_the_report():
    mon = denet.ProcessMonitor(["sh", "-c", "sleep 0.2 & sleep 0.2; wait"], base_interval_ms=50, quiet=True)
    mon.run()
    text = mon._repr_html_()
    assert text.startswith('<div class="denet-report">')
    page = Page(text)
    assert {"cpu", "memory", "processes"} <= set(page.charts)
    assert "sleep 0.2" in page.column("procs", "Command")


# --------------------------------------------------------------------------
# to_dataframe and plot


def test_to_dataframe_one_row_per_process_per_sample():
    pd = require_module("pandas", "python3-pandas")
    mon = denet.ProcessMonitor(["sh", "-c", "sleep 0.4 & sleep 0.4; wait"], base_interval_ms=50, quiet=True)
    mon.run()
    samples = mon.get_samples()
    df = mon.to_dataframe()
    assert isinstance(df, pd.DataFrame)
    assert len(df) == sum(1 + len(s["children"]) for s in samples)
    for col in ("elapsed_s", "pid", "command", "is_root", "cpu_usage_pct", "mem_rss_mib", "disk_write_bytes"):
        assert col in df.columns, df.columns
    assert "mem_rss_kb" not in df.columns and "cpu_usage" not in df.columns
    assert df["elapsed_s"].min() >= 0 and df["elapsed_s"].max() < 30  # seconds, not epoch ms
    assert set(df["pid"]) == {mon.get_pid()} | {c["pid"] for s in samples for c in s["children"]}
    root = df[df["is_root"]]
    assert len(root) == len(samples) and (root["pid"] == mon.get_pid()).all()
    first = samples[-1]["parent"]
    assert root["mem_rss_mib"].iloc[-1] == pytest.approx(first["mem_rss_kb"] / 1024)
    # the children rows are the samples' children entries, in order
    expected = [(c["pid"], c["command"]) for s in samples for c in s["children"]]
    assert list(zip(df[~df["is_root"]]["pid"], df[~df["is_root"]]["command"])) == expected
    assert "sleep 0.4" in {command for _, command in expected}


def test_plot_draws_four_panels_against_seconds():
    require_module("matplotlib", "python3-matplotlib")
    mon = denet.ProcessMonitor(["sleep", "0.3"], base_interval_ms=50, quiet=True)
    mon.run()
    fig = mon.plot()
    axes = fig.get_axes()
    assert len(axes) == 4
    assert axes[-1].get_xlabel() == "time since start (s)"
    assert [ax.get_ylabel() for ax in axes][:2] == ["CPU %", "RSS (MiB)"]
    xs = axes[1].get_lines()[0].get_xdata()
    assert min(xs) >= 0 and max(xs) < 30


@pytest.mark.parametrize("module, method", [("pandas", "to_dataframe"), ("matplotlib", "plot")])
def test_missing_optional_library_gives_an_install_hint(monkeypatch, module, method):
    for name in list(sys.modules):
        if name == module or name.startswith(module + "."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, module, None)  # import fails as if not installed
    mon = denet.ProcessMonitor(["true"], quiet=True)
    mon.run()
    with pytest.raises(ImportError, match=rf"ProcessMonitor.{method}\(\) needs {module}, which is not installed"
                                          rf".*apt-get install python3-{module}"):
        getattr(mon, method)()
