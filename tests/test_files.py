"""Reading back every format denet writes (JSON lines, JSON array, CSV), from the C
writers and from the Python ones: values compared, not just counted."""

import itertools
import json
import sys
import textwrap
import time

import pytest

import denet
from conftest import ebpf_monitor, py_cmd
from denet import _formats
from denet.analysis import load_metrics, save_metrics

FORMATS = ["jsonl", "json", "csv"]

# A busy parent with two children, one exiting early: tree samples with children.
WORKLOAD = py_cmd("""
    import subprocess, time
    a = subprocess.Popen(["sleep", "0.2"])
    b = subprocess.Popen(["sleep", "0.5"])
    t = time.time()
    while time.time() - t < 0.3:
        pass
    a.wait(); b.wait()
""")


def metrics(ts, cpu, rss, core=0, **extra):
    out = {name: 0 for name in (f["name"] for f in denet.SCHEMA)}
    out.update(ts_ms=ts, cpu_usage=cpu, mem_rss_kb=rss, mem_vms_kb=4 * rss, thread_count=1, cpu_core=core)
    out.update(extra)
    return out


EBPF = {"syscalls": {"total": 1234,
                     "by_category": {"file_io": 1000, "memory": 200, "process": 34},
                     "top_syscalls": [{"name": "read", "count": 700}, {"name": "write", "count": 300}],
                     "analysis": {"behavior_classification": "io_bound", "syscall_rate_per_sec": 411.3,
                                  "bottleneck_indicators": ["high_file_io"],
                                  "performance_profile": {"workload_type": "file_io_intensive",
                                                          "bottleneck_likelihood": 0.8}}}}


@pytest.fixture
def tree_samples():
    """Tree samples with everything the writers flatten: children (a JSON cell in CSV),
    a None cpu_core, a parent that is gone (None), floats that need 17 digits, nested
    eBPF counts with lists and strings."""
    return [
        {"ts_ms": 1000, "parent": metrics(1000, 12.5, 1024, core=None),
         "children": [{"pid": 41, "command": "sh -c 'a, \"b\"'", "metrics": metrics(1000, 0.1 + 0.2, 2048)}],
         "aggregated": dict(metrics(1000, 12.8, 3072), process_count=2, ebpf=EBPF)},
        {"ts_ms": 2000, "parent": None, "children": [],
         "aggregated": dict(metrics(2000, 1 / 3, 4096, core=None), process_count=0)},
    ]


@pytest.fixture
def flat_samples():
    return [metrics(1000, 50.0, 100), metrics(1100, 2 / 3, 200, core=None, page_faults_disk=7)]


# ------------------------------------------------------------ the Python writers


@pytest.mark.parametrize("fmt", FORMATS)
def test_python_writers_round_trip_tree_samples(tmp_path, tree_samples, fmt):
    path = tmp_path / f"t.{fmt}"
    save_metrics(tree_samples, path, format=fmt)
    assert load_metrics(path) == tree_samples


@pytest.mark.parametrize("fmt", FORMATS)
def test_python_writers_round_trip_flat_samples(tmp_path, flat_samples, fmt):
    path = tmp_path / f"f.{fmt}"
    save_metrics(flat_samples, path, format=fmt)
    assert load_metrics(path) == flat_samples


def test_csv_summary_equals_the_summary_of_the_samples(tmp_path, tree_samples):
    path = tmp_path / "t.csv"
    save_metrics(tree_samples, path, format="csv")
    from_file = denet.generate_summary_from_file(path)
    assert from_file == denet.generate_summary_from_metrics_json(tree_samples, 1.0)
    assert from_file["total_syscalls"] == 1234
    assert from_file["syscalls_by_category"] == EBPF["syscalls"]["by_category"]


def test_format_is_told_from_the_content_not_the_name(tmp_path, flat_samples):
    # what `denet --out run.csv` used to write: JSON lines in a file named .csv
    path = tmp_path / "run.csv"
    save_metrics(flat_samples, path, format="jsonl")
    assert load_metrics(path) == flat_samples
    assert denet.generate_summary_from_file(path)["sample_count"] == 2
    path = tmp_path / "run.data"
    save_metrics(flat_samples, path, format="csv")
    assert load_metrics(path) == flat_samples


def test_format_from_extension():
    assert _formats.format_from_path("a/run.CSV") == "csv"
    assert _formats.format_from_path("run.json") == "json"
    assert _formats.format_from_path("run.jsonl") == "jsonl"
    assert _formats.format_from_path("run.ndjson") == "jsonl"
    assert _formats.format_from_path("run.txt") is None
    assert _formats.format_from_path("run") is None


def test_csv_cells_are_typed_back():
    text = ('ts_ms,cpu_usage,mem_rss_kb,cpu_core,note,flag,list\n'
            '1,1.5,007x,,"1,2",true,"[1,{""a"":null}]"\n')
    got = _formats.read_bytes(text.encode())
    # "007x" is not a number: read as a string, which the check refuses for mem_rss_kb
    assert got.format == "csv" and got.records == []
    assert [str(p) for p in got.problems] == ["line 2: mem_rss_kb is '007x', not a number"]
    got = _formats.read_bytes(text.replace("007x", "7").encode())
    assert got.problems == []
    (kind, rec), = got.records
    assert kind == "sample"
    assert rec == {"ts_ms": 1, "cpu_usage": 1.5, "mem_rss_kb": 7, "cpu_core": None, "note": "1,2",
                   "flag": True, "list": [1, {"a": None}]}


def test_bad_csv_rows_are_problems_with_their_lines(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("ts_ms,cpu_usage,mem_rss_kb\n1,2.0,3\n2,lots,3\n3,1.0\n4,nan,5\n5,1.0,6\n")
    got = _formats.read_file(path)
    assert [r["ts_ms"] for _, r in got.records] == [1, 5]
    assert [p.line for p in got.problems] == [3, 4, 5]
    assert "cpu_usage is 'lots', not a number" in got.problems[0].reason
    with pytest.raises(ValueError, match=r"bad\.csv:3: cpu_usage is 'lots'"):
        load_metrics(path)
    s = denet.generate_summary_from_file(path)
    assert s["sample_count"] == 2 and s["skipped_records"] == 3


def test_json_array_cut_short_is_read_line_by_line(tmp_path, flat_samples):
    # the extension's layout, as a killed writer leaves it: no closing bracket
    path = tmp_path / "cut.json"
    lines = [json.dumps(_formats.tag(s, "sample")) for s in flat_samples]
    path.write_text("[\n" + ",\n".join(lines) + ",\n" + lines[0][:20])
    assert load_metrics(path) == flat_samples
    got = _formats.read_file(path)
    assert got.incomplete_last_line and len(got.problems) == 1
    assert denet.generate_summary_from_file(path)["skipped_records"] == 1


# ------------------------------------------------------------ the C writers


def run_to_file(path, fmt, **kw):
    mon = denet.ProcessMonitor(WORKLOAD, base_interval_ms=40, output_file=str(path), output_format=fmt,
                               write_metadata=True, quiet=True, **kw)
    assert mon.run() == 0
    return mon


@pytest.mark.parametrize("fmt", FORMATS)
def test_c_writer_round_trip(tmp_path, fmt):
    path = tmp_path / f"run.{fmt}"
    mon = run_to_file(path, fmt)
    samples = mon.get_samples()
    assert len(samples) >= 5
    assert any(s["children"] for s in samples)
    assert load_metrics(path) == samples  # every value, children included
    from_file = denet.generate_summary_from_file(path)
    if fmt == "csv":
        # no summary record in CSV: the same estimate as from the samples in memory
        elapsed = (samples[-1]["ts_ms"] - samples[0]["ts_ms"]) / 1000
        assert from_file == denet.generate_summary_from_metrics_json(samples, elapsed)
        assert "total_cpu_time_secs" in from_file["estimated"]
    else:
        exact = mon.get_summary()
        assert "estimated" not in from_file
        for key in ("total_cpu_time_secs", "peak_process_rss_kb", "processes_seen"):
            assert from_file[key] == exact[key], key
        records = load_metrics(path, include_metadata=True)
        meta, summary = records[0], records[-1]
        assert meta == dict(mon.get_metadata(), kind="metadata")
        assert summary == dict(exact, kind="summary")  # every field of the summary line


@pytest.mark.parametrize("fmt", FORMATS)
def test_c_save_samples_round_trip(tmp_path, fmt):
    mon = denet.ProcessMonitor(WORKLOAD, base_interval_ms=40, include_children=False, quiet=True)
    assert mon.run() == 0
    path = tmp_path / f"saved.{fmt}"
    mon.save_samples(str(path), format=fmt)
    assert load_metrics(path) == mon.get_samples()


def test_c_csv_with_ebpf_keeps_the_syscall_counts(tmp_path, require_ebpf):
    path = tmp_path / "run.csv"
    mon = run_to_file(path, "csv", enable_ebpf=True)
    assert mon.ebpf_error is None, mon.ebpf_error
    samples = mon.get_samples()
    loaded = load_metrics(path)
    assert len(loaded) == len(samples)
    for got, want in zip(loaded, samples):
        want_sc = want["aggregated"]["ebpf"]["syscalls"]
        got_sc = got["aggregated"]["ebpf"]["syscalls"]
        # the CSV carries the counts (not the top list and analysis)
        assert got_sc["total"] == want_sc["total"]
        assert got_sc["by_category"] == want_sc["by_category"]
        assert got["parent"] == want["parent"] and got["children"] == want["children"]
    assert denet.generate_summary_from_file(path)["total_syscalls"] == samples[-1]["aggregated"]["ebpf"][
        "syscalls"]["total"] > 0


def test_json_document_with_samples_key(tmp_path, flat_samples):
    # {"metadata", "samples", "summary"} over many lines (indented)
    path = tmp_path / "doc.json"
    meta = {"pid": 1, "cmd": ["x"], "executable": "/x", "t0_ms": 1000}
    summary = {"total_time_secs": 0.1, "sample_count": 2, "total_cpu_time_secs": 0.5, "peak_process_rss_kb": 300}
    path.write_text(json.dumps({"metadata": meta, "samples": flat_samples, "summary": summary}, indent=2))
    assert load_metrics(path) == flat_samples
    assert load_metrics(path, include_metadata=True)[0] == dict(meta, kind="metadata")
    assert denet.generate_summary_from_file(path)["total_cpu_time_secs"] == 0.5


# Writes exactly 3 MiB and nothing else (-S -B: no site, no bytecode files), with two
# children alive when the test samples.
KNOWN = """
    import os, subprocess, sys
    fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    for _ in range(3):
        os.write(fd, b"x" * (1 << 20))
    os.close(fd)
    kids = [subprocess.Popen(["sleep", "60"]) for _ in range(2)]
    for k in kids:
        execd(k.pid, "sleep", "60")
    say("ready")
    hear()
    for k in kids:
        k.kill()
        k.wait()
"""


def sample_when_ready(mon, steps):
    """Starts sampling once the workload says "ready", takes one sample, lets the
    workload finish and stops; returns the sample. Sampling starts once the children's
    execs are complete: a child first read in the middle of its exec keeps the command it
    showed then (a known collector defect)."""
    steps.started()
    assert steps.expect() == "ready"
    mon.start()
    live = mon.sample_once()
    steps.send()
    assert mon.wait(timeout=30) == 0
    mon.stop()
    return live


def csv_view(sample):
    """A tree sample as CSV keeps it: the eBPF part reduced to the syscall counts."""
    sc = sample["aggregated"]["ebpf"]["syscalls"]
    ebpf = {"syscalls": {"total": sc["total"], "by_category": sc["by_category"]}}
    return dict(sample, aggregated=dict(sample["aggregated"], ebpf=ebpf))


@pytest.mark.parametrize("ebpf", [False, True], ids=["procfs", "ebpf"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_c_writer_values_are_the_known_ones(tmp_path, fmt, ebpf, request, steps):
    # Ground truth in the file itself, not only agreement with memory: the 3 MiB the
    # command wrote (plus its one "ready" line), the three processes of the tree.
    if ebpf:
        request.getfixturevalue("require_ebpf")
    path = tmp_path / f"run.{fmt}"
    cmd = [sys.executable, "-S", "-B", "-c",
           steps.prelude + textwrap.dedent(KNOWN), str(tmp_path / "data")]
    kw = dict(base_interval_ms=40, output_file=str(path), output_format=fmt,
              write_metadata=True, stdout=steps.w)
    mon = ebpf_monitor(cmd, **kw) if ebpf else denet.ProcessMonitor(cmd, **kw)
    live = sample_when_ready(mon, steps)
    wrote = 3 << 20
    samples = load_metrics(path)
    memory = mon.get_samples()
    if fmt == "csv" and ebpf:  # CSV carries the syscall counts, not the top list or analysis
        memory, live = [csv_view(s) for s in memory], csv_view(live)
    assert samples == memory
    assert live in samples
    assert live["aggregated"]["process_count"] == 3
    assert sorted(c["command"] for c in live["children"]) == ["sleep 60", "sleep 60"]
    assert max(s["aggregated"]["process_count"] for s in samples) == 3
    last = samples[-1]["aggregated"]
    assert wrote <= last["syscall_write_bytes"] <= wrote + 64, last
    assert samples[-1]["parent"]["syscall_write_bytes"] == last["syscall_write_bytes"]
    if fmt != "csv":
        records = load_metrics(path, include_metadata=True)
        meta, summary = records[0], records[-1]
        assert meta["kind"] == "metadata" and meta["pid"] == mon.get_pid()
        assert meta["cmd"] == cmd
        assert summary["kind"] == "summary"
        assert summary["max_processes"] == 3 and summary["processes_seen"] == 3
        assert wrote <= summary["total_syscall_write_bytes"] <= wrote + 64, summary
        assert summary["sample_count"] == len(samples)


# A child whose command line holds everything a JSON string must escape or replace:
# quotes, backslashes, control characters, non-ASCII, and ill-formed UTF-8 (a stray
# byte, truncated sequences, an overlong form, a surrogate, a code point above U+10FFFF).
ODD_ARGS = [b'q"uo\\te\\"', b"tab\there\nnl\r\x01\x1f\x7f", "café € 😀".encode(),
            b"\xff\xfe", b"\xe2\x82", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf0\x9f\x98",
            b"\xf4\x90\x80\x80 end"]
ODD = """
    import subprocess, sys, time
    argv = [sys.executable.encode(), b"-S", b"-c", b"import time; time.sleep(60)"] + ODD_ARGS
    kid = subprocess.Popen(argv)
    while True:  # the exec is complete once /proc shows the new command line
        with open("/proc/%d/cmdline" % kid.pid, "rb") as f:
            if f.read() == b"\\0".join(argv) + b"\\0":
                break
        time.sleep(0.005)
    say("ready")
    hear()
    kid.kill()
    kid.wait()
"""


@pytest.mark.parametrize("fmt", FORMATS)
def test_c_writers_escape_odd_strings(tmp_path, fmt, steps):
    # Read back with json.loads (strict: a raw control character in a string fails), the
    # strings equal to what Python itself makes of the bytes: bytes.decode("utf-8",
    # "replace"), one U+FFFD for each ill-formed part, as in the samples in memory.
    path = tmp_path / f"odd.{fmt}"
    code = steps.prelude + f"ODD_ARGS = {ODD_ARGS!r}\n" + textwrap.dedent(ODD)
    cmd = [sys.executable, "-S", "-B", "-c", code, 'a "quoted" \\ arg\t\x01 é']
    mon = denet.ProcessMonitor(cmd, base_interval_ms=40, output_file=str(path), output_format=fmt,
                               write_metadata=True, stdout=steps.w, quiet=True)
    live = sample_when_ready(mon, steps)
    argv = [sys.executable.encode(), b"-S", b"-c", b"import time; time.sleep(60)"] + ODD_ARGS
    want = b" ".join(argv).decode("utf-8", "replace")
    assert [c["command"] for c in live["children"]] == [want]
    text = path.read_text(encoding="utf-8")  # well-formed UTF-8 throughout
    if fmt == "jsonl":
        records = [json.loads(line) for line in text.splitlines()]
    elif fmt == "json":
        records = json.loads(text)
    else:
        records = load_metrics(path)  # the children cell through json.loads
    samples = [r for r in records if r.get("kind", "tree") == "tree"]
    assert [{k: v for k, v in s.items() if k != "kind"} for s in samples] == mon.get_samples()
    assert any(c["command"] == want for s in samples for c in s["children"])
    if fmt != "csv":
        assert records[0]["kind"] == "metadata" and records[0]["cmd"] == cmd


@pytest.mark.parametrize("ebpf", [False, True], ids=["procfs", "ebpf"])
def test_dicts_match_the_file_sample_after_sample_while_the_tree_changes(tmp_path, ebpf, request):
    # A Metrics dict is built from the one made for the same process the sample before
    # (only what changed is made again): each dict sample_once() returns must still be
    # what the JSON writer, which builds its text afresh, wrote for that same sample, and
    # a dict the caller changes must not leak into the next sample. The tree churns
    # through some 250 short-lived processes (pids that go, and entries dropped) while
    # one child grows its memory.
    if ebpf:
        request.getfixturevalue("require_ebpf")
    path = tmp_path / "run.jsonl"
    grow = ("import time\nb = []\nfor i in range(60):\n"
            "    b.append(bytearray(256 * 1024)); time.sleep(0.02)\n")
    script = (f"{sys.executable} -c '{grow}' & "
              "for j in 1 2 3 4 5; do for i in $(seq 50); do sleep 0.02 & done; wait; done; wait")
    mon = denet.ProcessMonitor(["sh", "-c", script], base_interval_ms=1000, max_interval_ms=1000,
                               output_file=str(path), enable_ebpf=ebpf, quiet=True)
    got = []
    while mon.is_running():
        s = mon.sample_once()
        if s is None:
            break
        got.append(json.loads(json.dumps(s)))  # a deep copy, before the caller's changes
        for c in s["children"]:
            c["metrics"]["mem_rss_kb"] = -1  # what a caller may do with its dicts
            del c["metrics"]["ts_ms"]
        s["parent"].clear()
        # nor may a change to a thread's off-CPU entry
        for entry in s["aggregated"].get("ebpf", {}).get("offcpu", {}).get("thread_stats", {}).values():
            entry["count"] = -1
            del entry["thread_name"]
        time.sleep(0.01)
    mon.stop()
    written = [r for r in load_metrics(path) if "children" in r]
    by_ts = {r["ts_ms"]: r for r in written}
    matched = [g for g in got if g["ts_ms"] in by_ts]
    assert len(matched) >= 20, (len(got), len(written))
    pids, rss = set(), {}
    for g in matched:
        assert g == by_ts[g["ts_ms"]], g["ts_ms"]
        for c in g["children"]:
            pids.add(c["pid"])
            rss.setdefault(c["pid"], set()).add(c["metrics"]["mem_rss_kb"])
    assert len(pids) >= 100, len(pids)
    if ebpf:  # the threads' entries were there to compare, sample after sample
        entries = [len(g["aggregated"]["ebpf"]["offcpu"]["thread_stats"]) for g in matched]
        assert min(entries[5:]) >= 2 and sum(entries) >= 200, entries
    # The samples kept in memory keep their children packed (a child as it was in the
    # sample before: only its place there): made again, what save_samples() writes from
    # them is the file's, line for line, and so (without eBPF, whose parts would make
    # these dicts several times larger and this process's RSS high for the tests after)
    # is what get_samples() returns.
    saved = tmp_path / "saved.jsonl"
    mon.save_samples(str(saved))
    with open(path) as a, open(saved) as b:
        def tree(f):
            return (line for line in f if line.startswith('{"kind":"tree"'))
        lines = 0
        for lines, (want, got) in enumerate(itertools.zip_longest(tree(a), tree(b)), 1):
            assert got == want, lines
    assert lines == len(written)
    if not ebpf:
        kept = mon.get_samples()
        assert kept == written, (len(kept), len(written))
    assert max(len(v) for v in rss.values()) >= 5, "no child's memory changed across samples"
