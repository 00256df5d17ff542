"""The report opened in a real browser: headless Chromium (Debian's `chromium`, installed
by `make`) renders the page of a real monitored run.

Two runs of the browser: one takes a screenshot (kept as build/report-test/report.png,
with the page as report.html), the other dumps the DOM of a copy of the page to which a
tiny script was appended; the script writes what the layout engine computed (each
chart's size, the drawn length of every series, the flame graph's frames, the page's
overflow) into the DOM.  The report itself carries no script."""
import json
import os
import re
import shutil
import subprocess
import tempfile

import pytest

import denet
from denet import report

from conftest import py_cmd, require_module

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARTIFACTS = os.path.join(ROOT, "build", "report-test")
WIDTH, HEIGHT = 1280, 2600

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--force-device-scale-factor=1"]

PROBE = """<script>
(function () {
  var out = {charts: [], flame: null};
  document.querySelectorAll('svg[data-chart]').forEach(function (svg) {
    var r = svg.getBoundingClientRect(), length = 0, n = 0;
    svg.querySelectorAll('path.series').forEach(function (p) { n++; length += p.getTotalLength(); });
    var item = {chart: svg.getAttribute('data-chart'), width: r.width, height: r.height,
                series: n, length: length};
    if (item.chart === 'flame') {
      item.frames = 0;
      svg.querySelectorAll('rect').forEach(function (rect) {
        if (rect.getBoundingClientRect().width > 0) item.frames++;
      });
    }
    out.charts.push(item);
  });
  out.scrollWidth = document.documentElement.scrollWidth;
  out.clientWidth = document.documentElement.clientWidth;
  out.tables = document.querySelectorAll('table').length;
  var pre = document.createElement('pre');
  pre.id = 'render-check';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
})();
</script>"""

WORKLOAD = """
    import os, subprocess, sys, time
    out = sys.argv[1]
    blob = bytearray(b"x") * (96 << 20)
    burn = "import time\\nt = time.process_time()\\nwhile time.process_time() - t < 0.4: pass"
    procs = [subprocess.Popen([sys.executable, "-c", burn]) for _ in range(2)]
    for p in procs:
        p.wait()
    del blob
    with open(out, "wb") as f:
        f.write(b"\\1" * (16 << 20))
        f.flush()
        os.fsync(f.fileno())
    os.unlink(out)
    time.sleep(0.4)
"""

# synthetic: this build records no off-CPU stacks yet, but the flame graph must render
FOLDED = """\
python;main;load_data;read;ksys_read;io_schedule 42000000
python;main;load_data;open;path_openat 3000000
python;main;train;queue.get;futex_wait 25000000
python;main;train;time.sleep;hrtimer_nanosleep 60000000
python;main;save;fsync;io_schedule 18000000
"""


def chromium():
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        pytest.fail("chromium is needed by this test but not installed; run `make test` "
                    "(it installs the Debian package chromium) or apt-get install chromium")
    return path


def run_browser(args, timeout=180):
    profile = tempfile.mkdtemp(prefix="denet-chromium-")
    try:
        # not under `make asan`'s preloaded sanitizer: that is for denet, not the browser
        env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "ASAN_OPTIONS", "UBSAN_OPTIONS")}
        return subprocess.run([chromium()] + FLAGS + [f"--user-data-dir={profile}"] + args,
                              capture_output=True, text=True, timeout=timeout, env=env)
    finally:
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def page():
    """A real run with children, a memory spike and disk writes (eBPF where possible)."""
    os.makedirs(ARTIFACTS, exist_ok=True)
    target = os.path.join(ROOT, "build", f"browser-test-{os.getpid()}.bin")
    mon = denet.ProcessMonitor(py_cmd(WORKLOAD) + [target], base_interval_ms=50, max_interval_ms=100,
                               quiet=True, enable_ebpf=denet.ebpf_available()[0])
    assert mon.run() == 0
    text = report.render_html(mon.get_samples(), mon.get_summary(), mon.get_metadata(),
                              title="denet report: browser test workload", offcpu_folded=FOLDED)
    path = os.path.join(ARTIFACTS, "report.html")
    report.write_text(path, text)
    return path, text


def test_report_renders_its_charts_in_chromium(page):
    path, text = page
    probe = os.path.join(ARTIFACTS, "report-probe.html")
    with open(probe, "w", encoding="utf-8") as f:
        f.write(text.replace("</body>", PROBE + "</body>"))
    out = run_browser([f"--window-size={WIDTH},{HEIGHT}", "--dump-dom", "file://" + probe])
    m = re.search(r'<pre id="render-check">(.*?)</pre>', out.stdout, re.S)
    assert m, f"chromium did not run the probe (rc {out.returncode}):\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}"
    check = json.loads(m.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    charts = {c["chart"]: c for c in check["charts"]}
    for name in ("cpu", "memory", "disk", "processes"):
        c = charts.get(name)
        assert c, (name, check)
        # laid out at a readable size, with lines actually drawn
        assert c["width"] >= 300 and 100 <= c["height"] <= c["width"], c
        assert c["series"] >= 1 and c["length"] > 200, c
    flame = charts["flame"]
    assert flame["width"] >= 800 and flame["frames"] >= 12, flame  # 5 stacks, 13 frames with "all"
    assert check["tables"] == 2  # summary and processes
    assert check["scrollWidth"] <= check["clientWidth"], check  # nothing spills sideways


def test_screenshot_shows_the_report(page):
    Image = require_module("PIL.Image", "python3-pil")
    path, _ = page
    shot = os.path.join(ARTIFACTS, "report.png")
    if os.path.exists(shot):
        os.unlink(shot)
    out = run_browser([f"--window-size={WIDTH},{HEIGHT}", f"--screenshot={shot}", "file://" + path])
    assert os.path.exists(shot), f"no screenshot (rc {out.returncode}):\n{out.stderr[-3000:]}"
    img = Image.open(shot).convert("RGB")
    assert img.size == (WIDTH, HEIGHT)
    colors = img.getcolors(maxcolors=1 << 22)

    def pixels_near(rgb, tol=40):
        return sum(n for n, c in colors if all(abs(a - b) <= tol for a, b in zip(c, rgb)))

    # the series colours of the charts are on screen, not only the page background
    assert pixels_near((37, 99, 235)) > 500, "no CPU line (blue) in the screenshot"
    assert pixels_near((124, 58, 237)) > 300, "no memory line (purple) in the screenshot"
    assert pixels_near((220, 38, 38)) > 150, "no disk line (red) in the screenshot"
    assert len(colors) > 200, "the screenshot looks blank"
