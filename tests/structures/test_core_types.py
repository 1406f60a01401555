"""Crystal, Particle and Pattern: conversions are lossless, units are right, bad input is refused."""

import numpy as np
import pytest

from nanosolve import Crystal, InputError, Particle
from nanosolve.scattering import Pattern, q_from_two_theta, two_theta_from_q, wavelength


def fcc(a=4.08, el="Au"):
    return Crystal.from_parameters(a, a, a, 90, 90, 90, [el] * 4, [[0, 0, 0], [.5, .5, 0], [.5, 0, .5], [0, .5, .5]])


def mixed_crystal():
    """Rock salt with a (Fe0.5 Co0.5) cation site, labelled sites."""
    return Crystal.from_parameters(
        4.25, 4.25, 4.25, 90, 90, 90, ["Fe", "Co", "O"], [[0, 0, 0], [0, 0, 0], [.5, .5, .5]],
        occupancies=[0.5, 0.5, 1.0], labels=["M1", "M1", "O1"], name="mixed")


def test_fcc_symmetry_and_cell():
    c = fcc()
    sym = c.symmetry()
    assert (sym.number, sym.symbol, sym.crystal_system, sym.crystal_system_number) == (225, "Fm-3m", "cubic", 7)
    assert c.volume == pytest.approx(4.08 ** 3)
    assert c.cell_params == pytest.approx([4.08, 4.08, 4.08, 90, 90, 90])
    # Au: 4 atoms * 196.97 u / 67.9 Å^3 = 19.26 g/cm^3 (tabulated 19.3)
    assert c.density == pytest.approx(19.26, abs=0.02)


def test_symmetrized_snaps_a_distorted_rock_salt_back():
    rng = np.random.default_rng(0)
    frac = [[0, 0, 0], [.5, .5, 0], [.5, 0, .5], [0, .5, .5], [.5, .5, .5], [0, 0, .5], [0, .5, 0], [.5, 0, 0]]
    ideal = Crystal.from_parameters(4.21, 4.21, 4.21, 90, 90, 90, ["Mg"] * 4 + ["O"] * 4, frac)
    noisy = Crystal(ideal.lattice + rng.normal(0, 0.02, (3, 3)), ideal.frac_coords + rng.normal(0, 0.01, (8, 3)),
                    ideal.species, properties={"source": "test"})
    assert noisy.symmetry(symprec=1e-3).number == 1
    assert noisy.symmetrized(symprec=0.1).properties["space_group"] == 8  # Cm: 0.1 Å is too tight for this noise
    snapped = noisy.symmetrized(symprec=0.25)
    assert snapped.properties == {"source": "test", "space_group": 225, "symprec": 0.25}
    assert snapped.symmetry(symprec=1e-5).number == 225  # exact, not merely within 0.25 Å
    assert len(snapped) == 2 and sorted(snapped.species) == ["Mg", "O"]  # the primitive cell
    # the cubic cell of the primitive fcc cell (a/√2 edges, 60° angles) keeps the noisy volume
    assert snapped.cell_params[:3] == pytest.approx([snapped.cell_params[0]] * 3)
    assert snapped.cell_params[3:] == pytest.approx([60, 60, 60])
    assert 4 * snapped.volume == pytest.approx(noisy.volume, rel=0.02)
    # too tight a tolerance finds nothing and changes nothing but the cell choice
    assert noisy.symmetrized(symprec=1e-4).properties["space_group"] == 1


def test_triclinic_parameters_roundtrip():
    c = Crystal.from_parameters(5.1, 6.2, 7.3, 81.0, 97.0, 103.0, ["Si"], [[0.1, 0.2, 0.3]])
    assert c.cell_params == pytest.approx([5.1, 6.2, 7.3, 81.0, 97.0, 103.0])


@pytest.mark.parametrize("make", [fcc, mixed_crystal])
def test_crystal_pymatgen_roundtrip_is_lossless(make):
    c = make()
    back = Crystal.from_pymatgen(c.to_pymatgen())
    assert np.allclose(back.lattice, c.lattice)
    order = np.lexsort((back.species, *back.frac_coords.T))
    order0 = np.lexsort((c.species, *c.frac_coords.T))
    assert [back.species[i] for i in order] == [c.species[i] for i in order0]
    assert np.allclose(back.frac_coords[order], c.frac_coords[order0])
    assert np.allclose(back.occupancies[order], c.occupancies[order0])
    assert back.composition == pytest.approx(c.composition)


def test_mixed_site_becomes_one_disordered_pymatgen_site():
    s = mixed_crystal().to_pymatgen()
    assert len(s) == 2
    assert s[0].species.get_atomic_fraction("Fe") == pytest.approx(0.5)
    assert s[0].label == "M1"
    assert not s.is_ordered


@pytest.mark.parametrize("make", [fcc, mixed_crystal])
def test_crystal_ase_roundtrip_is_lossless(make):
    c = make()
    back = Crystal.from_ase(c.to_ase())
    assert np.allclose(back.lattice, c.lattice)
    assert np.allclose(back.frac_coords, c.frac_coords)
    assert back.species == c.species
    assert np.allclose(back.occupancies, c.occupancies)
    assert back.labels == c.labels


def test_supercell_keeps_density_and_composition_ratio():
    c = mixed_crystal()
    s = c.supercell((2, 1, 3))
    assert len(s) == 6 * len(c)
    assert s.volume == pytest.approx(6 * c.volume)
    assert s.density == pytest.approx(c.density)


def test_particle_roundtrips_and_diameter():
    p = Particle([[0, 0, 0], [2.5, 0, 0], [0, 3.0, 0]], ["Au", "Au", "Ag"])
    assert p.diameter == pytest.approx(np.hypot(2.5, 3.0))
    assert p.formula == "Ag1Au2"
    back = Particle.from_ase(p.to_ase())
    assert np.allclose(back.positions, p.positions) and back.species == p.species
    back = Particle.from_pymatgen(p.to_pymatgen())
    assert np.allclose(back.positions, p.positions) and back.species == p.species
    assert np.allclose(p.centered().center, 0)


def test_unknown_element_and_nan_are_refused():
    with pytest.raises(InputError, match="unknown element 'Xq'"):
        Particle([[0, 0, 0]], ["Xq"])
    with pytest.raises(InputError, match="non-finite"):
        Particle([[0, np.nan, 0]], ["Au"])
    with pytest.raises(InputError, match="coordinates for"):
        Crystal(np.eye(3), [[0, 0, 0]], ["Au", "Au"])
    with pytest.raises(InputError, match="singular"):
        Crystal(np.zeros((3, 3)), [[0, 0, 0]], ["Au"])


def test_packing_radius_is_slaters_with_the_metallic_radius_where_none_is_tabulated():
    import warnings

    from nanosolve.structures.elements import packing_radius

    assert packing_radius("Li") == pytest.approx(1.45) and packing_radius("Al") == pytest.approx(1.25)  # Slater 1964
    with warnings.catch_warnings():  # pymatgen warns for each radius it lacks
        warnings.simplefilter("ignore")
        assert packing_radius("Cf") == pytest.approx(1.86)  # no Slater radius: Cf's metallic radius
        with pytest.raises(InputError, match="Fm"):  # neither radius is tabulated
            packing_radius("Fm")


def test_packing_volume_ratio_sums_radius_cubes_over_sites():
    from nanosolve.structures.elements import packing_volume_ratio

    # NaCl -> KCl: (r_K^3 + r_Cl^3) / (r_Na^3 + r_Cl^3) with Slater's 2.20, 1.80, 1.00 Å
    assert packing_volume_ratio(["Na", "Cl"], ["K", "Cl"]) == pytest.approx((2.2**3 + 1.0) / (1.8**3 + 1.0))
    assert packing_volume_ratio(["Li", "Li"], ["Li", "Li"]) == 1.0
    with pytest.raises(InputError, match="one new element per site"):
        packing_volume_ratio(["Na", "Cl"], ["K"])


def test_species_labels_are_normalised():
    c = Crystal(np.eye(3) * 4, [[0, 0, 0], [.5, .5, .5], [0, .5, .5]], ["FE", "O2-", "Co1"])
    assert c.species == ["Fe", "O", "Co"]


def test_two_theta_q_conversion_matches_bragg_law():
    # Cu Ka1, Si(111) d = 3.1356 Å -> 2θ = 28.44° (NIST SRM 640 line position)
    d, wl = 3.1356, 1.54056
    tth = 2 * np.degrees(np.arcsin(wl / (2 * d)))
    assert tth == pytest.approx(28.44, abs=5e-3)
    assert q_from_two_theta(tth, wl) == pytest.approx(2 * np.pi / d)
    assert two_theta_from_q(2 * np.pi / d, wl) == pytest.approx(tth)
    assert np.isnan(two_theta_from_q(9.0, wl))  # beyond 4π/λ = 8.16 Å⁻¹
    assert wavelength("CuKa1") == pytest.approx(1.54056)
    assert wavelength("Mo Kα") == pytest.approx(0.71073)


def test_pattern_conversion_resample_normalise():
    tth = np.linspace(10, 80, 701)
    p = Pattern(tth, np.exp(-((tth - 40) / 2) ** 2), "xrd", "tth", wavelength="CuKa")
    q = p.to_q()
    assert q.x_unit == "q" and q.x[0] == pytest.approx(q_from_two_theta(10, 1.54184))
    back = q.to_two_theta()
    assert np.allclose(back.x, tth)
    mo = q.to_two_theta(0.71073)  # same Q, shorter wavelength -> smaller angles
    assert mo.x.max() < 40
    r = p.resample(np.linspace(0, 100, 11))
    assert r.y[0] == 0 and r.y[4] == pytest.approx(1.0)
    assert p.normalized("area").y.sum() * 0.1 == pytest.approx(1.0, rel=1e-3)
    assert p.normalized("minmax").y.max() == pytest.approx(1.0)


def test_pattern_errors():
    with pytest.raises(InputError, match="no wavelength"):
        Pattern([10, 20], [1, 2], "xrd", "tth").to_q()
    with pytest.raises(InputError, match="non-finite"):
        Pattern([1, 2, 3], [1, np.nan, 2])
    with pytest.raises(InputError, match="no points"):
        Pattern([], [])
    with pytest.raises(InputError, match="unknown pattern kind"):
        Pattern([1, 2], [1, 2], kind="foo")
    with pytest.raises(InputError, match="needed"):
        Pattern([1, 2], [1, 2], "gr", "r").resample([0, 5], fill=None)
    with pytest.raises(InputError, match="unknown wavelength"):
        wavelength("Unobtainium")
