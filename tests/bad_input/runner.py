"""Run many CLI calls in ONE process (``python runner.py CASES.json RESULTS.json``).

Each case runs through typer's CliRunner in a fresh working folder; recorded: exit code, output,
any exception escaping the CLI (a traceback), the files the call left behind (in its working
folder and in the input folder), whether a prepared output folder was changed, and the process'
peak RSS after the call. The parent test runs this under an address-space limit.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import tempfile
import traceback
import warnings
from pathlib import Path


def _files(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


def main(cases_json: str, results_json: str) -> None:
    from typer.testing import CliRunner

    sys.path.insert(0, str(Path(__file__).parent))
    from cases import make_earlier_run

    from nanosolve.cli.main import app

    spec = json.loads(Path(cases_json).read_text())
    inputs = Path(spec["inputs"])
    runner = CliRunner()
    results = []
    warnings.simplefilter("ignore")
    for case_id, argv, _ in spec["cases"]:
        work = Path(tempfile.mkdtemp(prefix=f"{case_id}-", dir=spec["scratch"]))
        earlier = make_earlier_run(work / "earlier") if "earlier" in argv else None
        before_inputs, before_work = _files(inputs), _files(work)
        args = [a.replace("{d}", str(inputs)) for a in argv]
        cwd = os.getcwd()
        os.chdir(work)
        try:
            res = runner.invoke(app, args, catch_exceptions=True)
        finally:
            os.chdir(cwd)
        exc = None
        if res.exception is not None and not isinstance(res.exception, SystemExit):
            exc = "".join(traceback.format_exception(*res.exc_info))
        after_inputs, after_work = _files(inputs), _files(work)
        results.append({
            "id": case_id, "exit_code": res.exit_code, "output": res.output, "exception": exc,
            "new_inputs": sorted(set(after_inputs) - set(before_inputs)),
            "changed_inputs": sorted(k for k in before_inputs if after_inputs.get(k) != before_inputs[k]),
            "new_work": sorted(set(after_work) - set(before_work)),
            "changed_work": sorted(k for k in before_work if after_work.get(k) != before_work[k]),
            "earlier_kept": None if earlier is None else sorted(n for n in earlier if (work / "earlier" / n).exists()),
            "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        })
    Path(results_json).write_text(json.dumps(results))


if __name__ == "__main__":
    main(*sys.argv[1:3])
