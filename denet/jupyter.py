"""Jupyter support: ``%load_ext denet`` registers the ``%%denet`` cell magic.

::

    %%denet [--ebpf] [--interval MS] [--html FILE]
    ...cell code...

The kernel's process and the children it starts are monitored while the cell runs
(``ProcessMonitor.from_pid(os.getpid())``); then the report is shown under the cell:
summary, charts over time, processes and, with ``--ebpf``, the top system calls.  The
measurement stays in the variable ``_denet`` (``_denet.summary``, ``_denet.samples()``,
``_denet.monitor``).  CPU time in the report covers the cell only.

IPython is imported only here, so ``import denet`` does not need it.
"""

from __future__ import annotations

import os

from IPython.core import magic_arguments
from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, magics_class
from IPython.display import HTML, display

from . import report
from ._measure import Measurement

__all__ = ["DenetMagics", "load_ipython_extension"]


def _title(cell: str) -> str:
    first = next((line.strip() for line in cell.splitlines() if line.strip()), "")
    if len(first) > 70:
        first = first[:69] + "…"
    return f"denet: cell {first!r}" if first else "denet: empty cell"


@magics_class
class DenetMagics(Magics):
    @magic_arguments.magic_arguments()
    @magic_arguments.argument("--ebpf", action="store_true",
                              help="count system calls with eBPF (needs root or CAP_BPF+CAP_PERFMON)")
    @magic_arguments.argument("--interval", type=int, default=100, metavar="MS",
                              help="sampling interval in milliseconds (default 100)")
    @magic_arguments.argument("--html", metavar="FILE", default=None,
                              help="also write the report as a standalone HTML page to FILE")
    @cell_magic
    def denet(self, line: str, cell: str):
        """Monitor this kernel and its children while the cell runs, then show the report."""
        args = magic_arguments.parse_argstring(self.denet, line)
        if args.interval <= 0:
            raise UsageError(f"%%denet: --interval must be > 0 ms, got {args.interval}")
        m = Measurement(ebpf=args.ebpf, base_interval_ms=args.interval,
                        max_interval_ms=max(args.interval, 1000))
        m.start()
        try:
            self.shell.run_cell(cell)
        finally:
            m.stop()
        self.shell.user_ns["_denet"] = m
        title = _title(cell)
        samples, summary, metadata = m.samples(), m.summary, m.monitor.get_metadata()
        t0_ms = m.t0_wall * 1000
        folded = report._monitor_folded(m.monitor)
        if args.ebpf and m.ebpf_error:
            print(f"denet: eBPF unavailable, no syscall counts: {m.ebpf_error}")
        if args.html:
            page = report.render_html(samples, summary, metadata, title=title, t0_ms=t0_ms, offcpu_folded=folded)
            try:
                report.write_text(args.html, page)
            except OSError as e:
                raise UsageError(f"%%denet: cannot write --html {args.html}: {e.strerror or e}") from None
            print(f"denet: report written to {os.path.abspath(args.html)}")
        display(HTML(report.render_fragment(samples, summary, metadata, title=title, t0_ms=t0_ms,
                                            offcpu_folded=folded)))


def load_ipython_extension(ipython) -> None:
    """``%load_ext denet``: register the ``%%denet`` cell magic."""
    ipython.register_magics(DenetMagics)
