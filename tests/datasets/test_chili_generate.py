"""CHILI dataset generation: record contents, determinism, kill-and-resume, Dask, from-cifs."""

import os
import signal
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest

from nanosolve.datasets.chili.generate import generate, run_task
from nanosolve.datasets.chili.recipe import CHILI_3K_METALS, chili3k_tasks
from nanosolve.datasets.storage import GraphStore, open_store
from nanosolve.structures.builders.chili_types import CHILI_CRYSTAL_TYPES, space_group_number

SIGNAL_SHAPES = {"saxs": (300,), "sans": (300,), "xrd": (580,), "nd": (580,), "xpdf": (6000,), "npdf": (6000,)}


def assert_same_store(a, b):
    assert a.keys() == b.keys()
    assert a.indices() == b.indices()
    assert a.attrs == b.attrs
    for i in range(len(a)):
        ra, rb = a[i], b[i]
        assert ra.keys() == rb.keys()
        for k in ra:
            if isinstance(ra[k], np.ndarray):
                assert ra[k].dtype == rb[k].dtype and np.array_equal(ra[k], rb[k]), (a.keys()[i], k)
            else:
                assert ra[k] == rb[k], (a.keys()[i], k)


def test_chili3k_recipe_has_3180_graphs_in_fixed_order():
    tasks = chili3k_tasks()
    assert len(CHILI_3K_METALS) == 53 and len(tasks) == 636
    keys = [k for t in tasks for k in t.record_keys]
    idx = [i for t in tasks for i in t.record_indices]
    assert len(keys) == len(set(keys)) == 3180
    assert idx == list(range(3180))


@pytest.fixture(scope="module")
def au_records():
    """Every crystal type for one metal, two radii, with signals."""
    out = []
    for t in chili3k_tasks(metals=("Au",), radii=(5.0, 10.0)):
        res = run_task(t)
        assert res.error is None, res.error
        out.extend(res.records)
    return out


def test_records_hold_every_chili_field_with_the_right_shapes(au_records):
    for _idx, _key, rec in au_records:
        n, e = rec["x"].shape[0], rec["edge_index"].shape[1]
        assert rec["x"].shape == (n, 4) and rec["pos_abs"].shape == (n, 3) and rec["pos_frac"].shape == (n, 3)
        assert rec["edge_attr"].shape == (e, 1) and rec["edge_index"].dtype == np.int64
        assert rec["n_atoms"] == n and rec["n_bonds"] * 2 == e
        assert rec["cell_params"].shape == (6,)
        for name, shape in SIGNAL_SHAPES.items():
            assert rec[name].shape == shape and rec[name].dtype == np.float32
            assert np.all(np.isfinite(rec[name]))
        assert set(rec["atomic_species"]) == {"Au", "O"} and rec["n_atomic_species"] == 2
        assert rec["metal"] == "Au"
        assert np.all((rec["pos_frac"] >= 0) & (rec["pos_frac"] < 1))
        # x columns: atomic number, radius, weight, electron affinity
        au = rec["x"][:, 0] == 79
        assert np.allclose(rec["x"][au, 2], 196.97, atol=0.01)


def test_every_edge_attr_is_the_distance_between_its_endpoints(au_records):
    for _, key, rec in au_records:
        i, j = rec["edge_index"]
        d = np.linalg.norm(rec["pos_abs"][i].astype(np.float64) - rec["pos_abs"][j], axis=1)
        assert np.allclose(rec["edge_attr"][:, 0], d, atol=1e-4), key
        # unit-cell graph: periodic, so lengths are image distances; check they are bond-like
        assert np.all(rec["unit_cell_edge_attr"] > 0.5)


def test_crystal_systems_and_space_groups_match_the_type_definitions(au_records):
    expected_system = {225: "cubic", 216: "cubic", 221: "cubic", 227: "cubic", 186: "hexagonal",
                       194: "hexagonal", 136: "tetragonal", 164: "trigonal", 166: "trigonal"}
    seen = set()
    for _, key, rec in au_records:
        sg = space_group_number(rec["crystal_type"])
        assert rec["space_group_number"] == sg, key
        assert rec["crystal_system"] == expected_system[sg]
        seen.add(rec["crystal_type"])
    assert seen == set(CHILI_CRYSTAL_TYPES)


def test_particle_size_grows_with_radius(au_records):
    by_type = {}
    for _, _, rec in au_records:
        by_type.setdefault(rec["crystal_type"], []).append((rec["radius"], rec["n_atoms"], rec["np_size"]))
    for t, rows in by_type.items():
        rows.sort()
        assert rows[0][1] < rows[1][1] and rows[0][2] < rows[1][2], t
        assert rows[1][2] >= 2 * 10.0 - 1e-6  # a 10 Å radius cut spans at least 20 Å


def test_signals_agree_with_debyecalculator_on_the_same_atoms(au_records):
    """CHILI Table 6 signals vs DebyeCalculator run directly (x-ray and neutron; ours = 2 × DC)."""
    import torch
    from debyecalculator import DebyeCalculator

    from nanosolve.scattering import chili_signals as cs

    _, key, rec = next(r for r in au_records if r[1] == "rock_salt_Au_r5")
    atoms_pos = rec["pos_abs"].astype(np.float64)
    elements = np.where(rec["x"][:, 0] == 79, "Au", "O").tolist()
    for radiation, (xrd, pdf, sas) in {"xray": ("xrd", "xpdf", "saxs"), "neutron": ("nd", "npdf", "sans")}.items():
        dc = DebyeCalculator(device="cpu", qmin=1.0, qmax=30.0, qstep=0.05, biso=0.3, radiation_type=radiation,
                             dtype=torch.float64)
        _, iq = dc.iq((elements, atoms_pos))
        ref = 2 * np.asarray(iq)
        ours = rec[xrd]
        assert np.abs(ours[: ref.size] - ref[: ours.size]).max() / ref.max() < 1e-3, radiation
        dc = DebyeCalculator(device="cpu", qmin=0.0, qmax=3.0, qstep=0.01, biso=0.3, radiation_type=radiation,
                             dtype=torch.float64)
        _, iq = dc.iq((elements, atoms_pos))
        ref = 2 * np.asarray(iq)
        assert np.abs(rec[sas][: ref.size] - ref[: rec[sas].size]).max() / ref.max() < 1e-3, radiation
        dc = DebyeCalculator(device="cpu", qmin=1.0, qmax=30.0, rmin=0.0, rmax=60.0, rstep=0.01, qdamp=0.04,
                             biso=0.3, radiation_type=radiation, dtype=torch.float64)
        _, gr = dc.gr((elements, atoms_pos))
        ref = 2 * np.asarray(gr)
        n = min(ref.size, rec[pdf].size)
        assert np.abs(rec[pdf][:n] - ref[:n]).max() / np.abs(ref).max() < 1e-3, radiation
    assert rec["xrd"].size == cs.Q_XRD.size if hasattr(cs, "Q_XRD") else True


def _cli(*args):
    return [sys.executable, "-m", "nanosolve.cli.main", *map(str, args)]


SMALL = ["--metals", "Zn,Au,Fe", "--types", "rock_salt,wurtzite,spinel,rutile", "--radii", "5,8"]


@pytest.fixture(scope="module")
def reference_store(tmp_path_factory):
    path = tmp_path_factory.mktemp("ref") / "ref.sqlite"
    res = subprocess.run(_cli("dataset", "chili3k", path, *SMALL, "--workers", "2"), capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    return path


def test_cli_run_writes_the_recipe(reference_store):
    with open_store(reference_store) as st:
        assert len(st) == 3 * 4 * 2
        assert st.attrs["recipe"] == "chili3k"
        assert st.keys()[0] == "rock_salt_Zn_r5"


@pytest.mark.slow
def test_killed_and_resumed_run_equals_uninterrupted_run(reference_store, tmp_path):
    path = tmp_path / "killed.sqlite"
    proc = subprocess.Popen(_cli("dataset", "chili3k", path, *SMALL, "--workers", "1"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, process_group=0)
    deadline = time.time() + 300
    n = 0
    while time.time() < deadline and proc.poll() is None:
        if path.exists():
            try:
                with GraphStore(path, mode="r") as st:
                    n = len(st)
            except Exception:
                n = 0
            if n >= 6:
                break
        time.sleep(0.2)
    assert proc.poll() is None, "generation finished before it could be killed; make the recipe bigger"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    with GraphStore(path, mode="r") as st:
        partial = len(st)
    assert 0 < partial < 24
    res = subprocess.run(_cli("dataset", "chili3k", path, *SMALL, "--workers", "2"), capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "already there" in res.stdout
    with open_store(reference_store) as a, open_store(path) as b:
        assert_same_store(a, b)


@pytest.mark.slow
def test_dask_local_cluster_gives_the_same_dataset(reference_store, tmp_path):
    distributed = pytest.importorskip("distributed")
    from nanosolve.datasets.chili.generate import dataset_attrs

    tasks = chili3k_tasks(metals=("Zn", "Au", "Fe"), crystal_types=("rock_salt", "wurtzite", "spinel", "rutile"),
                          radii=(5.0, 8.0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                      dashboard_address=None) as cluster, distributed.Client(cluster) as client:
            with GraphStore(tmp_path / "dask.sqlite") as st:
                st.set_attrs(dataset_attrs("chili3k", (5.0, 8.0), True)
                             | {"metals": ["Zn", "Au", "Fe"], "crystal_types": sorted({t.crystal_type for t in tasks})})
                report = generate(tasks, st, scheduler=client)
    assert not report.failures and report.records_written == 24
    with open_store(reference_store) as a, open_store(tmp_path / "dask.sqlite") as b:
        assert_same_store(a, b)


@pytest.mark.slow
def test_from_cifs_builds_good_cifs_and_reports_broken_ones(tmp_path, shared_data):
    import csv

    folder = tmp_path / "cifs"
    folder.mkdir()
    with open(shared_data / "cdvae" / "perov_5" / "test.csv") as fh:
        rows = [r for _, r in zip(range(4), csv.DictReader(fh))]
    for r in rows:
        (folder / f"perov_{r['material_id']}.cif").write_text(r["cif"])
    with open(shared_data / "cdvae" / "carbon_24" / "test.csv") as fh:
        carbon = next(csv.DictReader(fh))
    (folder / "carbon.cif").write_text(carbon["cif"])
    (folder / "garbage.cif").write_text("this is not a CIF at all\n")
    (folder / "empty.cif").write_text("")
    (folder / "half_occupied.cif").write_text(
        "data_x\n_cell_length_a 4.2\n_cell_length_b 4.2\n_cell_length_c 4.2\n_cell_angle_alpha 90\n"
        "_cell_angle_beta 90\n_cell_angle_gamma 90\n_symmetry_space_group_name_H-M 'P 1'\nloop_\n"
        "_atom_site_label\n_atom_site_type_symbol\n_atom_site_fract_x\n_atom_site_fract_y\n_atom_site_fract_z\n"
        "_atom_site_occupancy\nNa1 Na 0 0 0 0.5\nCl1 Cl 0.5 0.5 0.5 1\n")
    out = tmp_path / "cifs.sqlite"
    res = subprocess.run(_cli("dataset", "from-cifs", folder, out, "--radii", "6", "--workers", "1"),
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    with open_store(out) as st:
        assert sorted(st.keys()) == sorted(f"perov_{r['material_id']}_r6" for r in rows)
        rec = st[0]
        assert rec["crystal_type"] == "" and rec["n_atoms"] > 5 and rec["xrd"].shape == (580,)
    report = (tmp_path / "cifs.sqlite.rejects.csv").read_text()
    lines = {ln.split(",")[0].rsplit("/", 1)[-1]: ln for ln in report.strip().splitlines()[1:]}
    assert set(lines) == {"carbon.cif", "garbage.cif", "empty.cif", "half_occupied.cif"}
    assert "no metal" in lines["carbon.cif"] and "partial occupancy" in lines["half_occupied.cif"]
    assert "empty" in lines["empty.cif"]


def test_stats_reports_table_1_and_plots(reference_store, tmp_path):
    png = tmp_path / "stats.png"
    res = subprocess.run(_cli("dataset", "stats", reference_store, "--plot", png, "--json", tmp_path / "s.json"),
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    import json

    s = json.loads((tmp_path / "s.json").read_text())
    with open_store(reference_store) as st:
        meta = st.meta_table()
        assert s["graphs"] == len(st) == 24
        assert s["nodes"] == sum(m["n_atoms"] for m in meta)
        assert s["edges"] == sum(st[i]["edge_index"].shape[1] for i in range(len(st)))
    assert s["crystal_systems"] == {"tetragonal": 6, "hexagonal": 6, "cubic": 12}
    assert png.stat().st_size > 10_000
