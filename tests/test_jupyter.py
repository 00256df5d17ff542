"""Jupyter as users meet it: `%load_ext denet` and the `%%denet` cell magic driven through
IPython's InteractiveShell (in a subprocess, so the shell's global state stays there),
and a real notebook executed by nbclient on a kernel that runs this venv's python.

IPython, ipykernel, nbclient and nbformat are installed by `make`; their absence fails
these tests (with the fix), it does not skip them."""
import ast
import json
import os
import re
import subprocess
import sys

import pytest

import denet

from conftest import PY, require_module

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARTIFACTS = os.path.join(ROOT, "build", "report-test")

SHELL_SCRIPT = r'''
import json, sys
from IPython.core.interactiveshell import InteractiveShell

shown = []
ip = InteractiveShell.instance(colors="NoColor")
ip.display_pub.publish = lambda data, metadata=None, **kw: shown.append(data)
ip.run_line_magic("load_ext", "denet")
cell = sys.argv[1]
result = ip.run_cell(cell)
m = ip.user_ns.get("_denet")
print("\n@@RESULT@@" + json.dumps({
    "success": result.success,
    "html": [d.get("text/html") for d in shown if "text/html" in d],
    "x": ip.user_ns.get("x"),
    "child_pid": ip.user_ns.get("child_pid"),
    "summary": m.summary if m is not None else None,
    "measurements": m.measurements if m is not None else None,
}, default=str))
'''

BUSY_CHILD = ("import subprocess, sys\n"
              "p = subprocess.Popen([sys.executable, '-c', 'import time\\nt = time.process_time()\\n"
              "while time.process_time() - t < 0.4: pass'])\n"
              "child_pid = p.pid\n"
              "p.wait()\n"
              "blob = bytearray(b'x') * (40 << 20)\n"
              "x = 41 + 1\n")


def run_shell(tmp_path, line, body=BUSY_CHILD):
    require_module("IPython", "python3-ipython")
    env = dict(os.environ, IPYTHONDIR=str(tmp_path / "ipython"))
    script = tmp_path / "shell.py"
    script.write_text(SHELL_SCRIPT)
    out = subprocess.run([PY, str(script), f"{line}\n{body}"], capture_output=True, text=True,
                         timeout=180, cwd=tmp_path, env=env)
    assert "@@RESULT@@" in out.stdout, out.stdout + out.stderr
    text, _, payload = out.stdout.rpartition("@@RESULT@@")
    try:
        return json.loads(payload), text + out.stderr
    except ValueError:
        raise AssertionError(f"no result from the shell: {out.stdout[-2000:]}\n{out.stderr[-2000:]}") from None


def check_report_html(html, child_pids=()):
    """The report holds the summary table, the charts and the processes table."""
    assert html.startswith('<div class="denet-report">'), html[:200]
    assert '<table class="summary">' in html and '<table class="procs">' in html
    for chart in ("cpu", "memory", "processes"):
        assert f'data-chart="{chart}"' in html, chart
    assert "<script" not in html
    for pid in child_pids:
        assert f"<td>{pid:,}</td>" in html, pid


def test_cell_magic_through_interactive_shell(tmp_path):
    page = tmp_path / "cell.html"
    r, log = run_shell(tmp_path, f"%%denet --interval 50 --html {page}")
    assert r["success"] is True, log
    assert r["x"] == 42  # the cell ran in the user's namespace
    assert len(r["html"]) == 1, log
    check_report_html(r["html"][0], [r["child_pid"]])
    # CPU covers the cell (the 0.4 s child included), not the kernel's life before it
    cpu = r["summary"]["total_cpu_time_secs"]
    assert 0.4 <= cpu <= 5, r["summary"]
    assert r["measurements"]["peak_rss_mb"] >= 40
    html = r["html"][0]
    assert re.search(r"<th>CPU time</th><td>[\d.]+ s</td>", html)
    assert f"denet: report written to {page}" in log
    text = page.read_text()
    assert text.startswith("<!DOCTYPE html>") and 'data-chart="cpu"' in text


def test_cell_magic_with_ebpf(tmp_path):
    r, log = run_shell(tmp_path, "%%denet --ebpf --interval 50")
    assert r["success"] is True, log
    ok, reason = denet.ebpf_available()
    if ok:
        assert "Top system calls" in r["html"][0]
        assert r["measurements"]["syscalls"] > 0
    else:
        if os.environ.get("DENET_REQUIRE_EBPF") or os.geteuid() == 0:
            pytest.fail(f"eBPF is required here but unavailable: {reason}")
        assert "denet: eBPF unavailable, no syscall counts:" in log
        check_report_html(r["html"][0])


def test_cell_magic_reports_a_failing_cell_and_rejects_bad_options(tmp_path):
    r, log = run_shell(tmp_path, "%%denet", "x = 1\nraise ValueError('boom from the cell')\n")
    assert "ValueError: boom from the cell" in log
    assert len(r["html"]) == 1  # what the cell used before it failed is still shown
    check_report_html(r["html"][0])
    r, log = run_shell(tmp_path, "%%denet --interval 0", "x = 1\n")
    assert "UsageError: %%denet: --interval must be > 0 ms, got 0" in log
    assert r["x"] is None  # the cell did not run


NOTEBOOK_CELLS = [
    "%load_ext denet",
    "%%denet --interval 50\n" + BUSY_CHILD,
    "import denet\nmon = denet.ProcessMonitor(['sh', '-c', 'sleep 0.3 & sleep 0.3; wait'], base_interval_ms=50)\n"
    "mon.run()\nmon",
    "denet.SummaryTable(mon.get_summary())",
    "df = mon.to_dataframe()\nprint(len(df) == sum(1 + len(s['children']) for s in mon.get_samples()))\n"
    "print(sorted(set(df['command']) - {None}))",
]


def _kernel_name(tmp_path):
    """The kernel `make jupyter-kernel` registered, when it runs this python; else one
    registered for this test in a temporary JUPYTER_PATH."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        spec = KernelSpecManager().get_kernel_spec("denet")
        if os.path.realpath(spec.argv[0]) == os.path.realpath(sys.executable) or spec.argv[0] == sys.executable:
            return "denet", os.environ.get("JUPYTER_PATH")
    except NoSuchKernel:
        pass
    prefix = tmp_path / "jupyter-prefix"
    subprocess.run([PY, "-m", "ipykernel", "install", "--prefix", str(prefix), "--name", "denet-test"],
                   check=True, capture_output=True)
    return "denet-test", str(prefix / "share" / "jupyter")


def test_notebook_executed_by_nbclient(tmp_path, monkeypatch):
    nbformat = require_module("nbformat", "python3-nbformat")
    nbclient = require_module("nbclient", "python3-nbclient")
    require_module("ipykernel", "python3-ipykernel")
    kernel, jupyter_path = _kernel_name(tmp_path)
    if jupyter_path:
        monkeypatch.setenv("JUPYTER_PATH", jupyter_path)
    monkeypatch.setenv("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in NOTEBOOK_CELLS]
    client = nbclient.NotebookClient(nb, kernel_name=kernel, timeout=180, startup_timeout=120,
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    os.makedirs(ARTIFACTS, exist_ok=True)
    nbformat.write(nb, os.path.join(ARTIFACTS, "notebook.ipynb"))

    def outputs(i, kind=None):
        return [o for o in nb.cells[i].outputs if kind is None or o.output_type == kind]

    for i, cell in enumerate(nb.cells):
        assert not outputs(i, "error"), (i, outputs(i, "error"))
    magic = [o for o in outputs(1, "display_data") if "text/html" in o.data]
    assert len(magic) == 1, outputs(1)
    check_report_html(magic[0].data["text/html"])
    assert "denet: cell &#x27;import subprocess, sys&#x27;" in magic[0].data["text/html"]  # its title
    shown = outputs(2, "execute_result")[0].data["text/html"]  # a monitor is shown as its report
    check_report_html(shown)
    assert "sleep 0.3" in shown
    table = outputs(3, "execute_result")[0].data["text/html"]
    assert '<table class="summary">' in table and "Wall time" in table
    printed = "".join(o.get("text", "") for o in outputs(4, "stream"))
    rows_match, commands = printed.strip().splitlines()
    assert rows_match == "True", printed
    # the root and its sleeps (a forked sh may be seen before it execs sleep)
    assert {"sh -c 'sleep 0.3 & sleep 0.3; wait'", "sleep 0.3"} <= set(ast.literal_eval(commands)), printed
