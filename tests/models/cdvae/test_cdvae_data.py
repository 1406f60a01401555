"""CDVAE data: CSV / CIF-folder loading, cache, Niggli preprocessing, splits, prototypes."""

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from nanosolve.errors import InputError
from nanosolve.models.cdvae.data import (
    CrystalTable,
    composition_split,
    preprocess,
    prototype_table,
    random_split,
    read_cdvae_csv,
    read_cif_folder,
    to_data_list,
)
from nanosolve.paths import shared_data_dir
from nanosolve.structures.crystal import CRYSTAL_SYSTEMS, Crystal
from nanosolve.structures.io import write_cif

torch.set_num_threads(1)
DATA = shared_data_dir() / "cdvae"
needs_data = pytest.mark.skipif(not (DATA / "perov_5" / "val.csv").is_file(),
                                reason="shared CDVAE data (../shared/data/cdvae) not present")


def _head(src: Path, dst: Path, n: int, edit=None) -> Path:
    """Copy the header and the first n rows of a CDVAE CSV (optionally editing rows)."""
    with open(src, newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        rows = [r for _, r in zip(range(n), reader)]
    if edit:
        header, rows = edit(header, rows)
    with open(dst, "w", newline="") as fh:
        csv.writer(fh).writerows([header, *rows])
    return dst


def _load(path, tmp_path, **kw):
    kw.setdefault("cache", tmp_path / "cache")
    return read_cdvae_csv(path, **kw)


def _matches(a: Crystal, b: Crystal) -> bool:
    from pymatgen.analysis.structure_matcher import StructureMatcher

    return StructureMatcher(primitive_cell=False, scale=False).fit(a.to_pymatgen(), b.to_pymatgen())


# ----- CSV loading ---------------------------------------------------------------------------------
@needs_data
def test_perov_rows_counts_and_known_row(tmp_path):
    path = _head(DATA / "perov_5" / "val.csv", tmp_path / "perov.csv", 200)
    t = _load(path, tmp_path)
    assert len(t) == 200 and len(t.ids) == 200 and t.rejected == []
    assert sorted(t.props) == ["dir_gap", "heat_all", "heat_ref", "ind_gap"]
    assert all(v.shape == (200,) for v in t.props.values())
    # first row of val.csv: material 18517, CdCuN3, cubic a = 4.27928426 Å
    c = t.crystals[0]
    assert t.ids[0] == "18517" and c.name == "18517"
    assert c.formula == "CdCuN3" and len(c) == 5
    np.testing.assert_allclose(c.cell_params, [4.27928426] * 3 + [90.0] * 3, atol=1e-6)
    assert t.props["heat_ref"][0] == pytest.approx(2.709152583232041)
    assert c.properties["heat_all"] == pytest.approx(2.76)
    assert all(len(x) == 5 for x in t.crystals)


@needs_data
def test_carbon_rows_and_max_atoms(tmp_path):
    path = _head(DATA / "carbon_24" / "val.csv", tmp_path / "carbon.csv", 60)
    t = _load(path, tmp_path)
    assert len(t) == 60 and list(t.props) == ["energy_per_atom"]
    c = t.crystals[0]
    assert t.ids[0] == "C-148264-7891-51" and c.formula == "C" and len(c) == 8
    assert c.volume == pytest.approx(46.31214527, rel=1e-6)  # Niggli reduction keeps the volume
    assert t.props["energy_per_atom"][0] == pytest.approx(-154.223695)
    n_atoms = np.array([len(x) for x in t.crystals])
    limit = int(np.median(n_atoms))
    with pytest.warns(UserWarning, match="skipped"):
        small = _load(path, tmp_path, max_atoms=limit)
    assert len(small) == int((n_atoms <= limit).sum()) and len(small.rejected) == int((n_atoms > limit).sum())
    assert all(f"max_atoms={limit}" in r for _, r in small.rejected)


def test_mp20_style_columns(tmp_path):
    from nanosolve.structures.builders.prototypes import build_prototype

    crystals = [build_prototype("B1", ["Cl", "Na"]), build_prototype("B2", ["Cs", "Cl"])]
    header = ["", "material_id", "formation_energy_per_atom", "band_gap", "pretty_formula", "e_above_hull",
              "elements", "cif", "spacegroup.number"]
    rows = []
    for k, c in enumerate(crystals):
        write_cif(c, tmp_path / "x.cif")
        rows.append([str(k), f"mp-{k}", str(-1.5 - k), "3.0", c.formula, "0.0", str(sorted(set(c.species))),
                     (tmp_path / "x.cif").read_text(), "225"])
    path = tmp_path / "mp.csv"
    with open(path, "w", newline="") as fh:
        csv.writer(fh).writerows([header, *rows])
    t = _load(path, tmp_path)
    assert t.ids == ["mp-0", "mp-1"]
    assert sorted(t.props) == ["band_gap", "e_above_hull", "formation_energy_per_atom", "spacegroup.number"]
    np.testing.assert_allclose(t.props["formation_energy_per_atom"], [-1.5, -2.5])
    assert [c.formula for c in t.crystals] == ["NaCl", "CsCl"]
    # asking for one property only
    t1 = _load(path, tmp_path, props=["band_gap"])
    assert list(t1.props) == ["band_gap"]
    with pytest.raises(InputError, match="no property column 'gap'"):
        _load(path, tmp_path, props=["gap"])


@needs_data
def test_missing_cif_column_and_bad_files(tmp_path):
    def drop_cif(header, rows):
        k = header.index("cif")
        return [h for i, h in enumerate(header) if i != k], [[v for i, v in enumerate(r) if i != k] for r in rows]

    path = _head(DATA / "perov_5" / "val.csv", tmp_path / "nocif.csv", 5, drop_cif)
    with pytest.raises(InputError, match="no 'cif' column") as err:
        _load(path, tmp_path)
    assert str(path) in str(err.value)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(InputError, match="empty") as err:
        _load(empty, tmp_path)
    assert str(empty) in str(err.value)
    with pytest.raises(InputError, match="not found"):
        _load(tmp_path / "absent.csv", tmp_path)


@needs_data
def test_corrupted_cif_row_rejected_and_reported(tmp_path):
    def corrupt(header, rows):
        rows[4][header.index("cif")] = "data_broken\n_cell_length_a 4.0\nthis is not a cif"
        return header, rows

    path = _head(DATA / "perov_5" / "val.csv", tmp_path / "bad.csv", 20, corrupt)
    with pytest.warns(UserWarning, match=r"skipped 1 of 20"):
        t = _load(path, tmp_path)
    assert len(t) == 19
    bad_id = list(csv.reader(open(path, newline="")))[5][1]
    assert [r[0] for r in t.rejected] == [bad_id]
    assert "row 4" in t.rejected[0][1] and bad_id not in t.ids


@needs_data
def test_cache_round_trip_identical(tmp_path):
    path = _head(DATA / "perov_5" / "val.csv", tmp_path / "perov.csv", 200)
    cache = tmp_path / "cache"
    a = read_cdvae_csv(path, cache=cache)
    b = read_cdvae_csv(path, cache=cache)  # the speed-up: benchmarks/speed/bench_speed.py
    assert len(list(cache.glob("*.npz"))) == 1
    assert a.ids == b.ids and a.rejected == b.rejected and list(a.props) == list(b.props)
    for k in a.props:
        np.testing.assert_array_equal(a.props[k], b.props[k])
    for x, y in zip(a.crystals, b.crystals):
        np.testing.assert_array_equal(x.lattice, y.lattice)
        np.testing.assert_array_equal(x.frac_coords, y.frac_coords)
        assert x.species == y.species and x.name == y.name and x.properties == y.properties
    # other options -> another cache entry; a changed file is re-read
    read_cdvae_csv(path, cache=cache, niggli=False)
    assert len(list(cache.glob("*.npz"))) == 2
    _head(DATA / "perov_5" / "val.csv", path, 50)
    assert len(read_cdvae_csv(path, cache=cache)) == 50


# ----- CIF folder ----------------------------------------------------------------------------------
def test_cif_folder(tmp_path):
    from nanosolve.structures.builders.prototypes import build_prototype

    write_cif(build_prototype("B1", ["Cl", "Na"]), tmp_path / "a.cif")
    write_cif(build_prototype("A1", ["Cu"]), tmp_path / "b.cif")
    (tmp_path / "c.cif").write_text("garbage, not a CIF\n")
    with pytest.warns(UserWarning, match="skipped 1"):
        t = read_cif_folder(tmp_path)
    assert t.ids == ["a", "b"] and [c.formula for c in t.crystals] == ["NaCl", "Cu"]
    assert t.rejected[0][0] == "c.cif"
    with pytest.raises(InputError, match="not a folder"):
        read_cif_folder(tmp_path / "a.cif")


# ----- preprocessing -------------------------------------------------------------------------------
def _triclinic() -> Crystal:
    rng = np.random.default_rng(3)
    return Crystal.from_parameters(4.1, 5.3, 6.2, 80.0, 95.0, 104.0, ["Na", "Cl", "O", "O"], rng.random((4, 3)))


def test_niggli_of_skewed_equivalent_cell_equals_reduced():
    c = _triclinic()
    m = np.array([[1, 2, 0], [0, 1, 0], [1, 1, 1]])  # unimodular: same lattice, skewed basis
    assert round(abs(np.linalg.det(m))) == 1
    skewed = Crystal(m @ c.lattice, c.frac_coords @ np.linalg.inv(m), c.species)
    np.testing.assert_allclose(skewed.cart_coords, c.cart_coords, atol=1e-9)
    assert skewed.cell_params[0] > 1.5 * c.cell_params[0]
    a, b = preprocess(c), preprocess(skewed)
    np.testing.assert_allclose(a.cell_params, b.cell_params, atol=1e-6)
    assert _matches(a, b) and _matches(a, c)
    # supercell -> primitive + Niggli gives the same reduced cell
    s = preprocess(c.supercell((2, 1, 1)), primitive=True)
    assert len(s) == len(c)
    np.testing.assert_allclose(s.cell_params, a.cell_params, atol=1e-4)
    # canonical convention: a along x, b in xy, right handed; coordinates wrapped
    for x in (a, b, s):
        L = x.lattice
        assert abs(L[0, 1]) < 1e-12 and abs(L[0, 2]) < 1e-12 and abs(L[1, 2]) < 1e-12 and L[2, 2] > 0
        assert np.all((x.frac_coords >= 0) & (x.frac_coords < 1))
    assert a.volume == pytest.approx(c.volume)


def _chirality(c: Crystal) -> float:
    """Triple product of the minimum-image vectors from atom 0 to atoms 1-3: a proper rotation keeps
    it, a mirror image flips its sign (StructureMatcher cannot tell the two apart)."""
    shifts = np.array(np.meshgrid(*[[-1, 0, 1]] * 3, indexing="ij")).reshape(3, -1).T
    vecs = []
    for j in (1, 2, 3):
        d = (c.frac_coords[j] - c.frac_coords[0] + shifts) @ c.lattice
        vecs.append(d[np.argmin(np.linalg.norm(d, axis=1))])
    return float(np.linalg.det(np.array(vecs)))


def test_left_handed_cell_is_not_mirrored():
    c = _triclinic()
    left = Crystal(c.lattice[[1, 0, 2]], c.frac_coords[:, [1, 0, 2]], c.species)  # same atoms, det < 0
    assert np.linalg.det(left.lattice) < 0
    np.testing.assert_allclose(left.cart_coords, c.cart_coords, atol=1e-9)
    out = preprocess(left, niggli=False)
    assert np.linalg.det(out.lattice) > 0 and _matches(out, c)
    assert _chirality(out) == pytest.approx(_chirality(c), rel=1e-9)
    # the naive rebuild (same fractional coordinates in a right-handed cell) is the mirror image
    mirror = Crystal(out.lattice, left.frac_coords, c.species)
    assert _chirality(mirror) == pytest.approx(-_chirality(c), rel=1e-9)


# ----- splits, tensors, prototypes -----------------------------------------------------------------
@needs_data
def test_composition_split_groups_and_determinism(tmp_path):
    t = _load(_head(DATA / "perov_5" / "val.csv", tmp_path / "p.csv", 300), tmp_path)
    parts = composition_split(t, (0.8, 0.1, 0.1), seed=1)
    idx = np.concatenate(list(parts.values()))
    assert sorted(idx.tolist()) == list(range(len(t)))
    formulas = t.formulas
    sets = {k: {formulas[i] for i in v} for k, v in parts.items()}
    assert not (sets["train"] & sets["val"]) and not (sets["train"] & sets["test"]) and not (sets["val"] & sets["test"])
    assert abs(len(parts["train"]) - 240) <= 10
    again = composition_split(t, (0.8, 0.1, 0.1), seed=1)
    assert all(np.array_equal(parts[k], again[k]) for k in parts)
    other = composition_split(t, (0.8, 0.1, 0.1), seed=2)
    assert any(not np.array_equal(parts[k], other[k]) for k in parts)
    r = random_split(t, (0.5, 0.5), seed=0)
    assert len(r["train"]) == 150 and not set(r["train"]) & set(r["test"])
    sub = t.subset(parts["test"])
    assert len(sub) == len(parts["test"]) and sub.ids[0] == t.ids[parts["test"][0]]


@needs_data
def test_to_data_list(tmp_path):
    t = _load(_head(DATA / "perov_5" / "val.csv", tmp_path / "p.csv", 10), tmp_path)
    data = to_data_list(t, props=["heat_ref", "dir_gap"])
    d = data[0]
    assert d.y.shape == (1, 2) and d.y[0, 0].item() == pytest.approx(t.props["heat_ref"][0], rel=1e-6)
    assert int(d.num_atoms) == 5 and d.frac_coords.shape == (5, 3)
    np.testing.assert_allclose(d.lengths.numpy()[0], t.crystals[0].cell_params[:3], rtol=1e-6)
    assert not hasattr(to_data_list(t)[0], "y") or to_data_list(t)[0].y is None
    with pytest.raises(InputError, match="no property"):
        to_data_list(t, props="band_gap")


def test_prototype_table_all_systems_deterministic():
    t = prototype_table(n=21, max_atoms=12, seed=4)
    assert isinstance(t, CrystalTable) and len(t) == 21
    systems = {c.properties["crystal_system"] for c in t.crystals}
    assert systems == set(CRYSTAL_SYSTEMS)
    assert max(len(c) for c in t.crystals) <= 12
    # a crystal's labelled system matches spglib's (loose tolerance: substitution keeps geometry)
    for c in t.crystals[:7]:
        assert c.symmetry(symprec=0.01).crystal_system == c.properties["crystal_system"]
    u = prototype_table(n=21, max_atoms=12, seed=4)
    assert [c.formula for c in t.crystals] == [c.formula for c in u.crystals]
    assert [c.formula for c in prototype_table(n=21, max_atoms=12, seed=5).crystals] != [c.formula for c in t.crystals]
