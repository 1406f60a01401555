"""``nanosolve report DIR``: (re)write the self-contained ``report.html`` of a solve output folder."""

from __future__ import annotations

from pathlib import Path

import typer

from nanosolve.cli.common import console, friendly_errors


@friendly_errors
def report(
    folder: Path = typer.Argument(..., help="output folder of a solve (holds summary.json, the ranked "
                                            "structure files and the fit data)"),
    out: Path = typer.Option(None, "-o", "--out", help="HTML file to write (default: FOLDER/report.html)"),
    max_views: int = typer.Option(50, min=0, max=10_000, help="candidates with a 3-D view (best first)"),
):
    """Write FOLDER/report.html: input and settings, the ranked candidate table, the fit of the best
    candidate with its difference curve (hkl ticks for powder data, best Rw per motif for a PDF) and
    an interactive 3-D view of each candidate. One file, no network needed to open it."""
    from nanosolve.errors import InputError
    from nanosolve.solve.html_report import write_html_report

    if not folder.is_dir():
        raise InputError("not a folder; give the output folder of a solve", folder)
    path = write_html_report(folder, out, max_views=max_views)
    console.print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, open it in any browser)", highlight=False)
