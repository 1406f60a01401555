"""Structure builders: CHILI oxide types, AFLOW prototypes, metal clusters, nanoparticle cutting."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.spatial import cKDTree
from scipy.spatial.distance import cdist, pdist

from nanosolve.errors import InputError
from nanosolve.structures import Crystal
from nanosolve.structures.builders import (
    CHILI_CRYSTAL_TYPES,
    bcc_cluster,
    build_chili_crystal,
    build_cluster,
    build_prototype,
    chili_types,
    cut_nanoparticle,
    cut_sphere,
    decahedron,
    fcc_cluster,
    hcp_cluster,
    icosahedron,
    list_prototypes,
    octahedron,
    sc_cluster,
)
from nanosolve.structures.builders.prototypes import crystal_system_of, prototype_info
from nanosolve.structures.elements import atomic_radius, metallic_radius

# ----------------------------------------------------------------------------------------------
# CHILI crystal types
# ----------------------------------------------------------------------------------------------
EXPECTED_SG = dict(zip(CHILI_CRYSTAL_TYPES, [225, 216, 225, 225, 186, 194, 221, 136, 164, 166, 221, 227]))
EXPECTED_RATIO = {  # O atoms per metal atom
    "rock_salt": 1, "zinc_blende": 1, "fluorite": 2, "antifluorite": 0.5, "wurtzite": 1, "nickel_arsenide": 1,
    "caesium_chloride": 1, "rutile": 2, "cadmium_iodide": 2, "cadmium_chloride": 2, "rhenium_trioxide": 3,
    "spinel": 4 / 3,
}


def test_twelve_types_in_chili_order():
    assert list(CHILI_CRYSTAL_TYPES) == [
        "rock_salt", "zinc_blende", "fluorite", "antifluorite", "wurtzite", "nickel_arsenide", "caesium_chloride",
        "rutile", "cadmium_iodide", "cadmium_chloride", "rhenium_trioxide", "spinel",
    ]


@pytest.mark.parametrize("crystal_type", CHILI_CRYSTAL_TYPES)
@pytest.mark.parametrize("metal", ["Fe", "Ba", "Au", "Li"])
def test_chili_type_symmetry_stoichiometry_and_bonds(crystal_type, metal):
    c = build_chili_crystal(crystal_type, metal)
    assert c.symmetry().number == EXPECTED_SG[crystal_type]
    assert c.properties["crystal_type"] == crystal_type
    comp = c.composition
    assert set(comp) == {metal, "O"}
    assert comp["O"] / comp[metal] == pytest.approx(EXPECTED_RATIO[crystal_type])
    # The shortest M-O distance must be a plausible bond: within 30 % of r_M + r_O (hypothetical
    # high-valent oxides of big cations, e.g. ReO3-type BaO3, come out compressed by ~25 %).
    s = c.to_pymatgen()
    i, j, _, d = s.get_neighbor_list(7.0)
    sp = np.array(c.species)
    d_mo = d[(sp[i] == metal) & (sp[j] == "O")].min()
    assert 0.7 < d_mo / (atomic_radius(metal) + atomic_radius("O")) < 1.3


def test_chili_lattice_follows_fit_and_radius():
    fit = chili_types.fit_type("rock_salt")
    r = chili_types.lattice_radius
    for metal in ("Ir", "Au", "Zn"):  # not tabulated as rock-salt oxides: the fit applies
        a = build_chili_crystal("rock_salt", metal).cell_params[0]
        assert a == pytest.approx(fit.a_slope * (r(metal) + r("O")) + fit.a_intercept)
    # Formula weighting: antifluorite M2O uses 2 r_M + r_O.
    fit = chili_types.fit_type("antifluorite")
    a = build_chili_crystal("antifluorite", "Fe").cell_params[0]
    assert a == pytest.approx(fit.a_slope * (2 * r("Fe") + r("O")) + fit.a_intercept)
    # A tabulated oxide of the type keeps its measured cell.
    assert build_chili_crystal("rock_salt", "Mg").cell_params[0] == pytest.approx(4.211)
    assert build_chili_crystal("rutile", "Ti").cell_params[[0, 2]] == pytest.approx([4.594, 2.959])
    # Bigger metal -> bigger cell, in every type.
    for t in CHILI_CRYSTAL_TYPES:
        assert build_chili_crystal(t, "Ba").volume > build_chili_crystal(t, "Ni").volume


def test_chili_estimates_close_to_real_oxides():
    # Independent check of the whole chain (table + radii + fit) on oxides that are in the table.
    cases = [("rock_salt", "Ca", 4.811, None), ("rock_salt", "Ni", 4.177, None), ("wurtzite", "Zn", 3.250, 5.207),
             ("rutile", "Ti", 4.594, 2.959), ("spinel", "Fe", 8.396, None), ("fluorite", "Th", 5.597, None)]
    for t, m, a, c in cases:
        params = build_chili_crystal(t, m).cell_params
        assert params[0] == pytest.approx(a, rel=0.05), (t, m)
        if c is not None:
            assert params[2] == pytest.approx(c, rel=0.05), (t, m)


def test_chili_cells_match_published_chili_cifs():
    # Cells of CHILI-3K CIFs published in the CHILI repository (Dataset/CIFs), for oxides that
    # are not tabulated compounds, i.e. where both sides use the radius fit: within 3 %.
    published = [("antifluorite", "Fe", 4.8889), ("antifluorite", "Ir", 5.12), ("antifluorite", "Mo", 5.19394),
                 ("antifluorite", "Pt", 5.19394), ("rock_salt", "Ir", 4.4089), ("fluorite", "Ir", 5.29442),
                 ("wurtzite", "Ir", 3.18668), ("wurtzite", "Fe", 3.02406), ("rhenium_trioxide", "Ir", 3.89837),
                 ("spinel", "Ir", 8.40603)]
    for t, m, a in published:
        assert build_chili_crystal(t, m).cell_params[0] == pytest.approx(a, rel=0.03), (t, m)


@pytest.mark.parametrize("crystal_type", CHILI_CRYSTAL_TYPES)
def test_chili_fit_recomputed(crystal_type):
    refs = chili_types.REFERENCES[crystal_type]
    assert len(refs) >= 4
    rs = np.array([r.radius_sum(*chili_types.formula_counts(crystal_type)) for r in refs])
    a = np.array([r.a for r in refs])
    fit = chili_types.fit_type(crystal_type)
    coef = np.linalg.lstsq(np.column_stack([rs, np.ones_like(rs)]), a, rcond=None)[0]
    assert (fit.a_slope, fit.a_intercept) == pytest.approx(tuple(coef))
    assert fit.a_slope > 0  # a bigger metal never gives a smaller cell
    pred = fit.a_slope * rs + fit.a_intercept
    # Catches typos in the table: every compound within 12 % of its type's trend (20 % for CsCl,
    # whose table mixes thallium halides - Tl+ is far larger than Tl's metallic radius - with
    # B2 intermetallics).
    tol = 0.20 if crystal_type == "caesium_chloride" else 0.12
    assert np.all(np.abs(pred - a) / a < tol), chili_types.fit_report()
    if crystal_type in ("wurtzite", "nickel_arsenide", "rutile"):
        assert fit.c_over_a == pytest.approx(np.mean([r.c / r.a for r in refs]))


def test_chili_bad_input():
    with pytest.raises(InputError, match="unknown CHILI crystal type"):
        build_chili_crystal("perovskite", "Fe")
    with pytest.raises(InputError, match="not a metal"):
        build_chili_crystal("rock_salt", "Cl")
    with pytest.raises(InputError):
        build_chili_crystal("rock_salt", "Xx")
    assert build_chili_crystal("NaCl", "Mg").properties["crystal_type"] == "rock_salt"


# ----------------------------------------------------------------------------------------------
# AFLOW prototypes
# ----------------------------------------------------------------------------------------------
# Two entries of pymatgen's library whose stored example has a higher symmetry than its AFLOW
# label says (checked down to symprec 1e-5); everything else must match the label.
_PSEUDO_SYMMETRIC = {"AB3_tI16_140_b_ah", "A2B_oC12_38_de_ab"}
_POOL = ["Fe", "Ni", "Cu", "Zn", "Ga", "Ge", "As", "Se", "Mo", "Ag", "Sn", "Sb"]


def _packing(c: Crystal) -> float:
    from pymatgen.core import Element

    def radius(s):
        e = Element(s)
        return float(e.atomic_radius if e.atomic_radius is not None else e.metallic_radius)

    return sum(4 / 3 * np.pi * radius(s) ** 3 for s in c.species) / c.volume


def test_prototype_list():
    infos = list_prototypes()
    assert len(infos) == 288
    assert len({i.label for i in infos}) == 288
    assert {i.crystal_system for i in infos} == {
        "triclinic", "monoclinic", "orthorhombic", "tetragonal", "trigonal", "hexagonal", "cubic"}
    rocksalt = prototype_info("AB_cF8_225_a_b")
    assert (rocksalt.space_group, rocksalt.crystal_system, rocksalt.stoichiometry) == (225, "cubic", "AB")
    assert rocksalt.n_sites == 2 and rocksalt.formula == "NaCl" and rocksalt.species == ("Cl", "Na")
    assert crystal_system_of(167) == "trigonal" and crystal_system_of(168) == "hexagonal"


def test_all_prototypes_build_and_keep_space_group():
    mismatches = []
    for info in list_prototypes():
        original = build_prototype(info.label)
        new = build_prototype(info.label, _POOL[: len(info.species)])
        assert len(new) == info.n_sites
        sg0 = original.symmetry(symprec=1e-3)
        sg1 = new.symmetry(symprec=1e-3)
        assert sg1.number == sg0.number, info.label
        assert sg0.crystal_system == crystal_system_of(sg0.number)
        if sg0.number != info.space_group:
            mismatches.append(info.label)
        # Packing fraction of the substituted crystal equals the prototype's own.
        assert _packing(new) == pytest.approx(_packing(original), rel=1e-9), info.label
    assert set(mismatches) == _PSEUDO_SYMMETRIC


def test_prototype_substitution_forms():
    by_list = build_prototype("AB_cF8_225_a_b", ["O", "Mg"])  # letters A = Cl -> O, B = Na -> Mg
    by_elem = build_prototype("AB_cF8_225_a_b", {"Na": "Mg", "Cl": "O"})
    by_letter = build_prototype("AB_cF8_225_a_b", {"A": "O", "B": "Mg"})
    for c in (by_elem, by_letter):
        np.testing.assert_allclose(c.lattice, by_list.lattice)
        assert c.species == by_list.species
    assert by_list.formula == "MgO"
    # Volume scale = Σ r_new³ / Σ r_old³ exactly.
    ratio = (atomic_radius("Mg") ** 3 + atomic_radius("O") ** 3) / (atomic_radius("Na") ** 3 + atomic_radius("Cl") ** 3)
    assert by_list.volume / build_prototype("AB_cF8_225_a_b").volume == pytest.approx(ratio)
    assert build_prototype("B1").properties["prototype"] == "AB_cF8_225_a_b"  # Strukturbericht alias
    with pytest.raises(InputError, match="needs 2 elements"):
        build_prototype("AB_cF8_225_a_b", ["Mg"])
    with pytest.raises(InputError, match="unknown AFLOW prototype"):
        build_prototype("nonsense")
    with pytest.raises(InputError, match="no element or letter"):
        build_prototype("AB_cF8_225_a_b", {"K": "Mg"})



def test_isotypic_substitutions_keep_the_stoichiometry():
    """Every prototype of the formula's stoichiometry, in every count-keeping element assignment: a
    conventional Mg8Si4 cell gets the primitive antifluorite (CaF2 with Mg on F), and only it of the
    two CaF2 assignments; an AB formula gets both assignments of each AB prototype."""
    from collections import Counter

    from pymatgen.analysis.structure_matcher import StructureMatcher

    from nanosolve.structures.builders import isotypic_substitutions

    mg2si = isotypic_substitutions({"Mg": 8, "Si": 4})
    ab2 = [p for p in list_prototypes() if p.stoichiometry in ("AB2", "A2B") and p.n_sites <= 200]
    assert len(mg2si) == len(ab2) == 59  # exactly one assignment keeps 2:1
    for c in mg2si:
        n = Counter(c.species)
        assert set(n) == {"Mg", "Si"} and n["Mg"] == 2 * n["Si"]
    fluorite = [c for c in mg2si if c.properties["prototype"] == "AB2_cF12_225_a_c"]
    assert len(fluorite) == 1 and len(fluorite[0]) == 3
    a = 6.35  # antifluorite Mg2Si, conventional cell: Si on 4a, Mg on 8c
    fcc = [[0, 0, 0], [0, .5, .5], [.5, 0, .5], [.5, .5, 0]]
    conv = Crystal(np.eye(3) * a, fcc + [[x + .25, y + .25, z + .25] for x, y, z in fcc]
                   + [[x + .75, y + .75, z + .75] for x, y, z in fcc], ["Si"] * 4 + ["Mg"] * 8)
    sm = StructureMatcher(scale=True)
    hits = [c.properties["prototype"] for c in mg2si if sm.fit(c.to_pymatgen(), conv.to_pymatgen())]
    assert "AB2_cF12_225_a_c" in hits and len(hits) <= 3  # (a tetragonal cell of the same lattice may match too)
    ab = isotypic_substitutions({"Er": 1, "Ge": 1}, max_atoms=20)
    n_ab = sum(p.stoichiometry == "AB" and p.n_sites <= 20 for p in list_prototypes())
    assert len(ab) == 2 * n_ab and all(len(c) <= 20 for c in ab)
    assert isotypic_substitutions({"Ba": 1, "Ti": 1, "O": 3, "Sr": 7}) == []  # no such stoichiometry
    with pytest.raises(InputError, match="empty"):
        isotypic_substitutions({})
    with pytest.raises(InputError):
        isotypic_substitutions({"Xx": 1, "O": 1})

# ----------------------------------------------------------------------------------------------
# Clusters
# ----------------------------------------------------------------------------------------------
def _nn(p) -> float:
    return float(pdist(p.positions).min())


@pytest.mark.parametrize("k, n", [(1, 13), (2, 55), (3, 147), (4, 309)])
def test_icosahedron_magic_numbers(k, n):
    p = icosahedron("Au", shells=k + 1)
    assert len(p) == n == (10 * k**3 + 15 * k**2 + 11 * k + 3) // 3
    assert _nn(p) == pytest.approx(2 * metallic_radius("Au"))
    assert np.linalg.norm(p.positions.mean(0)) < 1e-9  # centred


@pytest.mark.parametrize("p", [2, 3, 4, 5])
def test_decahedron_pentagonal_bipyramid_counts(p):
    # q = 1, r = 0: pentagonal bipyramid with p atoms per edge, N = (5p³ + p) / 6.
    assert len(decahedron("Ag", p=p, q=1, r=0)) == (5 * p**3 + p) // 6


def test_octahedron_counts():
    for length in (2, 3, 4, 5):
        assert len(octahedron("Pt", length)) == (2 * length**3 + length) // 3
    for cutoff, n in ((1, 13), (2, 55), (3, 147)):  # cuboctahedra share the icosahedral magic numbers
        assert len(octahedron("Pt", 2 * cutoff + 1, cutoff)) == n


@pytest.mark.parametrize("builder, coordination", [(fcc_cluster, 12), (bcc_cluster, 8), (sc_cluster, 6), (hcp_cluster, 12)])
@pytest.mark.parametrize("element, scale", [("Cu", 1.0), ("Fe", 1.04)])
def test_lattice_clusters_nn_distance_and_coordination(builder, coordination, element, scale):
    p = builder(element, scale=scale)
    nn = 2 * metallic_radius(element) * scale
    assert _nn(p) == pytest.approx(nn)
    assert p.properties["nn_distance"] == pytest.approx(nn)
    # Bulk-like centre atom: exactly `coordination` neighbours at the NN distance.
    centre = np.argmin(np.linalg.norm(p.positions, axis=1))
    d = np.linalg.norm(p.positions - p.positions[centre], axis=1)
    assert np.sum(np.abs(d - nn) < 1e-6) == coordination


def test_hcp_ideal_axis_ratio_and_properties():
    p = hcp_cluster("Mg")
    assert p.properties["c"] / p.properties["lattice_constant"] == pytest.approx(np.sqrt(8 / 3))
    p = fcc_cluster("Ni", layers=(3, 4, 3))
    assert p.properties["shape"] == "fcc" and p.properties["element"] == "Ni"
    assert p.properties["lattice_constant"] == pytest.approx(2 * np.sqrt(2) * metallic_radius("Ni"))
    assert p.properties["parameters"]["layers"] == [3, 4, 3]
    json.dumps(p.properties)


def test_cluster_dispatch_and_errors():
    assert len(build_cluster("icosahedron", "Cu", shells=3)) == 55
    with pytest.raises(InputError, match="unknown cluster shape"):
        build_cluster("cube", "Cu")
    with pytest.raises(InputError, match="bad parameters"):
        build_cluster("icosahedron", "Cu", layers=3)
    with pytest.raises(InputError, match="scale"):
        icosahedron("Cu", 3, scale=0)
    with pytest.raises(InputError, match="layers"):
        fcc_cluster("Cu", layers=(3, -1, 2))
    with pytest.raises(InputError, match="cutoff"):
        octahedron("Cu", 3, cutoff=2)


# ----------------------------------------------------------------------------------------------
# Cutting nanoparticles
# ----------------------------------------------------------------------------------------------
def _brute_force_chili(crystal: Crystal, radius: float, reps: int = 9, scale: float = 1.25):
    """Oracle by CHILI's literal recipe: odd supercell, metal nearest its centre, full distance matrices.

    Returns one (positions relative to the centre, species) per metal tied for "nearest the
    centre": ties may be resolved differently, and symmetry-equivalent choices differ by rotation.
    """
    sc = crystal.supercell((reps, reps, reps))
    cart = sc.cart_coords
    metal = np.array([s != "O" for s in sc.species])
    centre = sc.lattice.sum(0) / 2
    m_idx = np.flatnonzero(metal)
    dc = np.linalg.norm(cart[m_idx] - centre, axis=1)
    r = np.array([atomic_radius(s) for s in sc.species])
    o_idx = np.flatnonzero(~metal)
    out = []
    for c in m_idx[dc <= dc.min() + 1e-9]:
        keep_m = metal & (np.linalg.norm(cart - cart[c], axis=1) <= radius + 1e-8)
        km = np.flatnonzero(keep_m)
        d = cdist(cart[o_idx], cart[km])
        ok = (d < scale * (r[o_idx][:, None] + r[km][None, :])).any(axis=1)
        keep = keep_m.copy()
        keep[o_idx[ok]] = True
        out.append((cart[keep] - cart[c], np.array(sc.species)[keep]))
    return out


def _same_point_sets(a, b, tol=1e-6):
    if len(a) != len(b):
        return False
    d, _ = cKDTree(b).query(a)
    return bool(np.all(d < tol))


@pytest.mark.parametrize("crystal_type, metal, radius", [
    ("rock_salt", "Mg", 7.0), ("spinel", "Fe", 6.5), ("rutile", "Ti", 8.0), ("wurtzite", "Zn", 7.5),
    ("antifluorite", "Li", 6.0),
])
def test_cut_nanoparticle_matches_brute_force(crystal_type, metal, radius):
    c = build_chili_crystal(crystal_type, metal)
    p = cut_nanoparticle(c, radius)
    candidates = _brute_force_chili(c, radius, reps=5 if crystal_type == "spinel" else 9)
    assert any(_same_point_sets(p.positions, pos) and sorted(p.species) == sorted(sp.tolist())
               for pos, sp in candidates)
    # Every metal is within the radius and the centre is a metal at the origin.
    metal_mask = np.array([s == metal for s in p.species])
    assert np.linalg.norm(p.positions[metal_mask], axis=1).max() <= radius + 1e-8
    assert p.species[0] == metal and np.linalg.norm(p.positions[0]) < 1e-9


@pytest.mark.parametrize("scale", [1.0, 1.25, 1.5])
def test_cut_nanoparticle_random_crystal_matches_brute_force(scale):
    # Random positions give a continuous distance distribution, so any error in the per-pair
    # cutoff changes the result (lattice crystals have gaps between shells that hide it).
    rng = np.random.default_rng(7)
    lattice = np.array([[7.0, 0.0, 0.0], [1.5, 6.5, 0.0], [0.8, -0.6, 7.5]])
    c = Crystal(lattice, rng.random((24, 3)), ["Fe"] * 8 + ["Zn"] * 4 + ["O"] * 12)
    p = cut_nanoparticle(c, 8.0, scale=scale)
    cands = _brute_force_chili(c, 8.0, reps=7, scale=scale)
    assert len(cands) == 1
    pos, sp = cands[0]
    assert _same_point_sets(p.positions, pos) and sorted(p.species) == sorted(sp.tolist())


def test_cut_pos_frac_and_source_info():
    c = build_chili_crystal("cadmium_chloride", "Ni")
    p = cut_nanoparticle(c, 9.0)
    pos_frac = np.array(p.properties["pos_frac"])
    site = np.array(p.properties["site_index"])
    centre = np.array(p.properties["center_cart"])
    np.testing.assert_allclose(pos_frac @ c.lattice - centre, p.positions, atol=1e-9)
    wrapped = np.mod(pos_frac - c.frac_coords[site] + 0.5, 1.0) - 0.5  # integer shifts only
    np.testing.assert_allclose(wrapped, 0.0, atol=1e-9)
    assert [c.species[i] for i in site] == p.species
    assert p.properties["source_formula"] == "NiO2"
    assert p.properties["source_properties"]["crystal_type"] == "cadmium_chloride"
    json.dumps(p.properties)  # properties stay JSON-serialisable


def test_cut_large_radius_counts():
    c = build_chili_crystal("rock_salt", "Fe")
    p = cut_nanoparticle(c, 25.0)
    n_metal = sum(s == "Fe" for s in p.species)
    # 4 metals per a³: the metal count approaches the sphere volume × density.
    expected = 4 / c.volume * 4 / 3 * np.pi * 25.0**3
    assert n_metal == pytest.approx(expected, rel=0.03)
    assert p.diameter == pytest.approx(50.0 + 2 * c.cell_params[0] / 2, abs=c.cell_params[0])


def test_cut_sphere_matches_brute_force():
    c = build_chili_crystal("fluorite", "Ce")
    for centre in (None, np.array([0.3, 1.1, 2.0])):
        p = cut_sphere(c, diameter=14.0, center=centre)
        sc = c.supercell((7, 7, 7))
        ref_centre = c.lattice.sum(0) / 2 if centre is None else centre
        cart = sc.cart_coords - 3 * c.lattice.sum(0)  # supercell spans cells -3..3
        keep = np.linalg.norm(cart - ref_centre, axis=1) <= 7.0
        assert _same_point_sets(p.positions, cart[keep] - ref_centre)
    with pytest.raises(InputError, match="exactly one"):
        cut_sphere(c, radius=3, diameter=6)
    with pytest.raises(InputError, match="positive"):
        cut_nanoparticle(c, -1.0)
