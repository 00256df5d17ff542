"""Make docs/report.png, the README's picture of the HTML report.

Runs examples/workload.py under denet (eBPF when this machine allows it), writes the
report to build/readme-report.html, has headless Chromium take a screenshot, crops it to
the page and stores it as a small palette PNG.

    .venv/bin/python tools/report_screenshot.py [OUT.png]
"""
import os
import shutil
import subprocess
import sys
import tempfile

from PIL import Image

import denet
from denet import report

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WIDTH = 1280


def main(out=os.path.join(ROOT, "docs", "report.png")):
    ebpf = denet.ebpf_available()[0]
    # paths relative to the repository, so the picture shows no checkout's location
    mon = denet.ProcessMonitor([os.path.relpath(sys.executable, ROOT), "examples/workload.py"], cwd=ROOT,
                               base_interval_ms=100, max_interval_ms=200, enable_ebpf=ebpf,
                               quiet=True, stdout=subprocess.DEVNULL)
    mon.run()
    os.makedirs(os.path.join(ROOT, "build"), exist_ok=True)
    page = os.path.join(ROOT, "build", "readme-report.html")
    report.write_text(page, report.render_html(mon.get_samples(), mon.get_summary(), mon.get_metadata(),
                                               title="denet report: python examples/workload.py"))
    shot = os.path.join(ROOT, "build", "readme-report-full.png")
    profile = tempfile.mkdtemp(prefix="denet-chromium-")
    try:
        subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                        "--no-first-run", "--disable-background-networking", "--disable-component-update",
                        "--disable-sync", "--hide-scrollbars", "--force-device-scale-factor=1",
                        f"--user-data-dir={profile}", f"--window-size={WIDTH},2400", f"--screenshot={shot}",
                        "file://" + page], check=True, capture_output=True, timeout=120)
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    img = Image.open(shot).convert("RGB")
    background = img.getpixel((WIDTH - 1, img.height - 1))
    bottom = img.height
    while bottom > 1 and all(img.getpixel((x, bottom - 1)) == background for x in range(0, WIDTH, 4)):
        bottom -= 1
    img = img.crop((0, 0, WIDTH, min(img.height, bottom + 16)))
    img.convert("P", palette=Image.ADAPTIVE, colors=96).save(out, optimize=True)
    print(f"{out}: {img.width}x{img.height}, {os.path.getsize(out) // 1024} KiB")


if __name__ == "__main__":
    main(*sys.argv[1:])
