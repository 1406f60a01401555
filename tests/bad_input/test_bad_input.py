"""Bad input through the command line: every case must end with exit code 2, exactly one
``error:`` line naming the file or option and the problem, no traceback, nothing written, and a
peak memory under 2 GB (measured: ru_maxrss of the process that ran it, under a 4 GB address-space
limit as a guard against a run-away allocation taking the machine down).

The ~200 cheap cases run in ONE subprocess (tests/bad_input/runner.py, typer's CliRunner); the
cases that would allocate tens of GB or run for days if unchecked run one process each. Also here:
--overwrite removes only an earlier run's files, two writers of one dataset store, and kill -9 of a
dataset generation (its workers die with it; the rerun completes the store).
"""

from __future__ import annotations

import json
import os
import re
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from cases import HEAVY_CASES, all_cases, make_earlier_run, make_files  # noqa: E402

ADDRESS_SPACE_LIMIT = 4 * 1024**3
PEAK_RSS_LIMIT_KB = 2 * 1024**2  # 2 GB
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
CASES = all_cases()


def _limit_address_space():
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_LIMIT, ADDRESS_SPACE_LIMIT))
    os.setsid()  # own process group: a timeout kills the whole tree


def _env() -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", COLUMNS="200", NO_COLOR="1",
               PYTHONWARNINGS="ignore")
    env.pop("NANOSOLVE_MEMORY_LIMIT", None)  # the machine's own figure (capped by the rlimit)
    return env


def _run_limited(argv: list[str], cwd: Path, timeout: float) -> tuple[int, str, int]:
    """(exit code, stdout+stderr, peak RSS in kB) of ``argv`` under the address-space limit."""
    proc = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=_limit_address_space, env=_env())
    deadline = time.monotonic() + timeout
    out_chunks = []
    import threading

    reader = threading.Thread(target=lambda: out_chunks.append(proc.stdout.read()), daemon=True)
    reader.start()
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            pid, status, usage = os.wait4(proc.pid, 0)
            reader.join(5)
            pytest.fail(f"{' '.join(argv)} still running after {timeout:.0f} s (a hang); output: {out_chunks}")
        time.sleep(0.05)
    reader.join(10)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, "".join(out_chunks), usage.ru_maxrss


def _check_error(output: str, fragments: list[str]) -> None:
    text = ANSI.sub("", output)
    assert "Traceback" not in text, text
    errors = [ln for ln in text.splitlines() if ln.lstrip().startswith("error:")]
    assert len(errors) == 1, f"expected exactly one error: line, got {len(errors)}:\n{text}"
    for frag in fragments:
        assert frag.lower() in errors[0].lower(), f"{frag!r} not named in: {errors[0]}"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("bad_inputs")
    make_files(d)
    return d


@pytest.fixture(scope="module")
def batch(inputs, tmp_path_factory) -> dict:
    """Every cheap case in one subprocess; {case id: result} plus the process' peak RSS."""
    scratch = tmp_path_factory.mktemp("bad_input_runs")
    spec = scratch / "cases.json"
    spec.write_text(json.dumps({"inputs": str(inputs), "scratch": str(scratch), "cases": CASES}))
    out = scratch / "results.json"
    code, text, peak = _run_limited([sys.executable, str(Path(__file__).parent / "runner.py"), str(spec), str(out)],
                                    scratch, timeout=900)
    assert code == 0 and out.is_file(), text
    results = {r["id"]: r for r in json.loads(out.read_text())}
    results["_peak_rss_kb"] = peak
    return results


def test_at_least_80_bad_inputs():
    assert len(CASES) + len(HEAVY_CASES) >= 80
    assert len({c[0] for c in CASES}) == len(CASES)  # ids unique


@pytest.mark.parametrize("case_id,argv,fragments", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_refused_cleanly(batch, case_id, argv, fragments):
    r = batch[case_id]
    assert r["exception"] is None, r["exception"]
    assert r["exit_code"] == 2, f"exit {r['exit_code']}:\n{r['output']}"
    _check_error(r["output"], fragments)
    assert not r["new_inputs"] and not r["changed_inputs"], f"wrote beside the inputs: {r}"
    assert not r["new_work"] and not r["changed_work"], f"left output behind: {r['new_work']} {r['changed_work']}"
    if r["earlier_kept"] is not None:  # a refused run leaves the earlier results as they were
        assert len(r["earlier_kept"]) == 6
    assert r["maxrss_kb"] < PEAK_RSS_LIMIT_KB


def test_batch_peak_memory_under_2_gb(batch):
    assert batch["_peak_rss_kb"] < PEAK_RSS_LIMIT_KB, f"{batch['_peak_rss_kb'] / 1024:.0f} MB"


@pytest.mark.parametrize("case_id,argv,fragments", HEAVY_CASES, ids=[c[0] for c in HEAVY_CASES])
def test_heavy_bad_input_is_refused_before_allocating(inputs, tmp_path, case_id, argv, fragments):
    args = [a.replace("{d}", str(inputs)) for a in argv]
    t0 = time.monotonic()
    code, text, peak_kb = _run_limited([sys.executable, "-m", "nanosolve.cli.main", *args], tmp_path, timeout=180)
    assert code == 2, text
    _check_error(text, fragments)
    assert list(tmp_path.iterdir()) == [], "left output behind"
    assert peak_kb < PEAK_RSS_LIMIT_KB, f"peak RSS {peak_kb / 1024:.0f} MB"
    assert time.monotonic() - t0 < 180


# ----- --overwrite ----------------------------------------------------------------------------------------
def test_overwrite_removes_only_the_earlier_runs_files(tmp_path):
    from nanosolve.cli.common import output_folder, results_folder
    from nanosolve.errors import InputError

    folder = tmp_path / "res"
    make_earlier_run(folder)
    (folder / "01_looks_like_ours.txt").write_text("not a candidate: wrong extension\n")
    with pytest.raises(InputError, match="earlier run"):
        output_folder(folder, "-o", overwrite=False)
    assert len(list(folder.iterdir())) == 7  # refused: nothing removed
    output_folder(folder, "-o", overwrite=True)
    assert len(list(folder.iterdir())) == 7  # accepted, but nothing removed before the new results exist
    with results_folder(folder, overwrite=True) as work:
        (work / "01_Pt13.xyz").write_text("new\n")
    assert sorted(p.name for p in folder.iterdir()) == ["01_Pt13.xyz", "01_looks_like_ours.txt", "my_notes.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["res"]
    (folder / "01_Pt13.xyz").unlink()
    output_folder(folder, "-o", overwrite=False)  # no earlier results left: accepted
    with pytest.raises(InputError, match="existing file"):
        output_folder(folder / "my_notes.txt", "-o")


def test_atomic_write_does_not_follow_a_planted_symlink(tmp_path):
    from nanosolve._io import atomic_write_text

    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (tmp_path / "out.xy.tmp").symlink_to(victim)  # the old fixed temporary name
    atomic_write_text(tmp_path / "out.xy", "new\n")
    assert victim.read_text() == "precious\n"
    assert (tmp_path / "out.xy").read_text() == "new\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.xy", "out.xy.tmp", "victim.txt"]


# ----- dataset store: one writer, kill -9 and resume ---------------------------------------------------------
def _cli(*args) -> list[str]:
    return [sys.executable, "-m", "nanosolve.cli.main", *map(str, args)]


def test_second_writer_of_a_store_is_refused(tmp_path):
    from nanosolve.datasets.storage import store_lock
    from nanosolve.errors import InputError

    store = tmp_path / "s.sqlite"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\nfrom nanosolve.datasets.storage import store_lock\n"
        f"with store_lock({str(store)!r}):\n    print('locked', flush=True)\n    time.sleep(120)\n")],
        stdout=subprocess.PIPE, text=True, env=_env())
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(InputError, match=f"pid {holder.pid}"):
            with store_lock(store):
                pass
        code, text, _ = _run_limited(_cli("dataset", "chili3k", store, "--metals", "Au", "--types", "rock_salt",
                                          "--radii", "5", "--no-signals", "--workers", "0"), tmp_path, 180)
        assert code == 2, text
        _check_error(text, ["s.sqlite", "another process", str(holder.pid)])
        assert not store.exists()  # refused before anything was written
    finally:
        holder.kill()
        holder.wait()
    with store_lock(store):  # the holder's death released the lock; re-entrant within one process
        with store_lock(store):
            pass


def _descendants(pid: int) -> list[tuple[int, str]]:
    """(pid, command line) of every live descendant of ``pid`` (from /proc)."""
    parent = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
                parent[int(d.name)] = int(stat.rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for child, ppid in parent.items():
            if ppid == p:
                todo.append(child)
                try:
                    out.append((child, (Path("/proc") / str(child) / "cmdline").read_text().replace("\0", " ")))
                except OSError:
                    pass
    return out


def _alive(pid: int) -> bool:
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_kill_9_of_generation_kills_its_workers_and_the_rerun_completes(tmp_path):
    from nanosolve.datasets.chili.recipe import chili3k_tasks
    from nanosolve.datasets.storage import open_store

    store = tmp_path / "s.sqlite"
    args = ("dataset", "chili3k", store, "--metals", "Au,Ag", "--types", "rock_salt,zinc_blende,caesium_chloride",
            "--radii", "5,8", "--workers", "2")
    proc = subprocess.Popen(_cli(*args), cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=_env(), start_new_session=True)
    deadline = time.monotonic() + 240
    workers = []
    while time.monotonic() < deadline and len(workers) < 2:
        time.sleep(0.5)
        workers = [p for p, cmd in _descendants(proc.pid) if "multiprocessing" in cmd and "resource_tracker" not in cmd]
    assert len(workers) >= 2, "no pool workers appeared"
    time.sleep(2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(5)  # without die_with_parent the workers compute on for minutes
    alive = [p for p in workers if _alive(p)]
    for p in alive:
        os.kill(p, signal.SIGKILL)
    assert not alive, f"{len(alive)} workers outlived their parent"
    code, text, _ = _run_limited(_cli(*args[:-2], "--workers", "0"), tmp_path, 600)
    assert code == 0, text
    expected = {k for t in chili3k_tasks(("Au", "Ag"), ("rock_salt", "zinc_blende", "caesium_chloride"), (5.0, 8.0))
                for k in t.record_keys}
    with open_store(store) as s:
        assert set(s.keys()) == expected
