"""Ordered superstructures of prototypes (``nanosolve.structures.builders.orderings``), checked
against pymatgen (supercells, space groups) and the textbook orderings they must contain."""

from collections import Counter

import numpy as np
import pytest
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

from nanosolve.errors import InputError
from nanosolve.structures.builders.orderings import hermite_normal_forms, ordered_substitutions
from nanosolve.structures.builders.prototypes import build_prototype


def test_hermite_normal_forms_count_the_distinct_sublattices():
    # the number of sublattices of index n of a 3-D lattice: 1, 7, 13, 35 for n = 1..4
    for n, count in ((1, 1), (2, 7), (3, 13), (4, 35)):
        forms = hermite_normal_forms(n)
        assert len(forms) == count
        assert all(round(np.linalg.det(h)) == n for h in forms)
        for i, h1 in enumerate(forms):  # distinct lattices: no H1 H2⁻¹ is an integer matrix
            for h2 in forms[i + 1:]:
                t = h1 @ np.linalg.inv(h2)
                assert not np.allclose(t, np.round(t), atol=1e-9)


@pytest.mark.parametrize("label, h", [
    ("AB3C_oP20_62_c_cd_a", np.diag([1, 1, 2])),  # a 20-atom cell with sites on both sides of 0/1
    ("AB3C_oP20_62_c_cd_a", np.array([[1, 0, 0], [1, 2, 0], [0, 1, 3]])),
    # coordinates of 5 decimals (0.66667) halved onto a rounding boundary (0.333335), z at 1e-33
    ("AB_hP4_186_b_b", np.array([[2, 0, 0], [0, 1, 0], [1, 0, 1]])),
])
def test_supercell_is_pymatgens_and_the_same_structure(label, h):
    base = build_prototype(label)
    big = base.supercell(h)
    ref = base.to_pymatgen().copy()
    ref.make_supercell(h)
    assert len(big) == len(ref) == round(np.linalg.det(h)) * len(base)
    assert np.allclose(big.lattice, ref.lattice.matrix)
    assert Counter(big.species) == Counter(str(s.specie) for s in ref)
    assert StructureMatcher(primitive_cell=False, scale=False).fit(big.to_pymatgen(), ref)
    assert np.all((big.frac_coords >= 0) & (big.frac_coords < 1))


def _space_groups(crystals, parent):
    return {SpacegroupAnalyzer(c.to_pymatgen(), symprec=0.1).get_space_group_number()
            for c in crystals if c.properties["parent_prototype"] == parent}


def test_double_perovskite_orderings_of_the_b_site():
    found = ordered_substitutions({"Sr": 2, "Yb": 1, "Nb": 1, "O": 6})
    assert found
    for c in found:
        counts = Counter(c.species)
        assert counts["Sr"] == 2 * counts["Yb"] == 2 * counts["Nb"] == counts["O"] / 3
        assert "Yb,Nb" in c.properties["prototype"] or "Nb,Yb" in c.properties["prototype"]  # cations only
    # the monoclinic P2_1/n double perovskite (rock-salt order in the Pnma perovskite's own cell) and
    # the cubic Fm-3m one (rock-salt order of the cubic perovskite, doubled cell)
    assert 14 in _space_groups(found, "AB3C_oP20_62_c_cd_a")
    cubic = [c for c in found if c.properties["parent_prototype"] == "AB3C_cP5_221_a_c_b"]
    rock_salt = [c for c in cubic if SpacegroupAnalyzer(c.to_pymatgen(), symprec=0.1).get_space_group_number() == 225]
    # one per assignment of the parent (Yb/Nb on the perovskite's B site, or on its A site with Sr on B)
    assert len(rock_salt) == 2
    for c in rock_salt:
        assert len(c) == 10 and c.properties["supercell_index"] == 2
        # every Yb has six Nb as its nearest neighbours on the shared site
        s = c.to_pymatgen()
        yb = [i for i, site in enumerate(s) if site.specie.symbol == "Yb"][0]
        near = [n for n in s.get_neighbors(s[yb], 6.0) if n.specie.symbol in ("Yb", "Nb")]
        dmin = min(n.nn_distance for n in near)
        assert sorted(n.specie.symbol for n in near if n.nn_distance < dmin + 0.1) == ["Nb"] * 6
    # each ordering once: no two are the same structure
    sm = StructureMatcher()
    for i, a in enumerate(cubic):
        assert not any(sm.fit(a.to_pymatgen(), b.to_pymatgen()) for b in cubic[i + 1:])


def test_layered_ruddlesden_popper_order_of_k2nif4_a_site():
    found = ordered_substitutions({"K": 1, "La": 1, "Ti": 1, "O": 4}, max_atoms=14)
    assert all(len(c) <= 14 for c in found)
    # NaLaTiO4-type: K and La in alternate rock-salt layers, P4/nmm in the doubled K2NiF4 cell
    assert 129 in _space_groups([c for c in found if c.properties["prototype"].endswith("K,La")],
                                "AB2C4_tI14_139_a_e_ce")
    assert not any("O" in c.properties["prototype"].split("ordered")[1] for c in found)  # O never shares


def test_volume_follows_the_packing_of_the_substituted_radii():
    from nanosolve.structures.builders.prototypes import isotypic_substitutions
    from nanosolve.structures.elements import packing_radius

    parents = isotypic_substitutions({"Al": 2, "Na": 2, "F": 6})  # Li and Al merged into Al
    found = ordered_substitutions({"Li": 1, "Na": 2, "Al": 1, "F": 6})
    assert found
    for c in found:
        merged = ["Al" if s == "Li" else s for s in c.species]
        # undo the Σ r³ scaling: the volume of the parent's (super)cell before Li took half the Al sites
        v_parent = c.volume * sum(packing_radius(s) ** 3 for s in merged) / sum(packing_radius(s) ** 3 for s in c.species)
        same_label = [p for p in parents if p.properties["prototype"] == c.properties["parent_prototype"]]
        assert any(abs(c.properties["supercell_index"] * p.volume - v_parent) < 1e-6 * v_parent for p in same_label)
        assert c.volume > v_parent  # Slater radii: Li 1.45 Å, Al 1.25 Å


def test_no_merge_no_ordering_and_empty_composition():
    assert ordered_substitutions({"K": 1, "Ca": 1, "C": 1, "O": 3, "F": 1}) == []
    with pytest.raises(InputError, match="empty"):
        ordered_substitutions({})
