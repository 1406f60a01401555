"""The 12 mono-metal-oxide crystal types of CHILI (Friis-Jensen et al. 2024), built for any metal.

CHILI generates metal-oxide nanoparticles from twelve simple crystal types with the metal M on
the cation site and O on the anion site. The lattice parameters of a hypothetical oxide M_mO_n
are estimated as CHILI's generator does: for each type, a straight line ``a = k * R + c`` is
fitted to the experimental lattice constants of real compounds of that structure type, where R is
the radius sum weighted by the formula (``m * r_M + n * r_X``; e.g. 2 r_M + r_O for antifluorite
M2O) with :func:`lattice_radius` (Pauling single-bond metallic radius where tabulated, else the
Slater atomic radius; mendeleev's data). The line is evaluated at ``m * r_M + n * r_O``; when the
oxide itself is a tabulated compound of the type (rock-salt MgO, rutile TiO2, ...) its measured
cell is used instead. Axial ratios (c/a) and free coordinates are the means over the same
compounds; for the layered CdI2/CdCl2 types c is fitted linearly as well, because it is governed
by the anion size rather than by a.

Why this convention: it is what the published CHILI-3K was built with (checked against CHILI's
public CIFs: antifluorite Fe2O, Ir2O, Mo2O and Pt2O come out at 4.93, 5.17, 5.24, 5.24 Å here vs
4.89, 5.12, 5.19, 5.19 Å there), so atom and bond counts are comparable with the paper's
(README, "CHILI datasets"). Weighting by the formula also keeps the metal sub-lattice of
metal-rich types (antifluorite, CsCl) from collapsing below metal-metal contact, which an
unweighted r_M + r_X fit does.

Where few real *oxides* adopt a type (zinc blende, NiAs, CsCl, CdI2, CdCl2, ReO3, antifluorite)
the table uses chalcogenides, pnictides and halides of the same type: the fit is a statement
about bond length vs. summed radii in a given coordination, which does not depend on the anion.

Sources of the tabulated constants: room-temperature values as given in R. W. G. Wyckoff,
*Crystal Structures* (2nd ed., 1963-1971), the structure-type tables of A. R. West, *Solid State
Chemistry and its Applications* (ch. 1; the tables CHILI's generator draws on too) and
W. B. Pearson, *Handbook of Lattice Spacings and Structures of Metals and Alloys* (intermetallic
and NiAs-type phases), with semiconductor values from Landolt-Börnstein (III/17 and III/41) and
the mineral values (rutile, cassiterite, spinels) from the standard mineralogical literature,
rounded to about 0.005 Å. They were entered from these references,
not downloaded; they are only used for a linear trend (the radii themselves are tabulated in
0.05 Å steps), so errors at the 0.01 Å level do not matter. ``fit_report()`` prints the
residuals of every fit.

Structures are generated with pymatgen's ``Structure.from_spacegroup`` (conventional cells,
standard settings; Fd-3m in origin choice 1) rather than by hand so that the symmetry is right
by construction.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

from nanosolve.errors import InputError
from nanosolve.structures.crystal import Crystal
from nanosolve.structures.elements import atomic_radius, is_metal, normalize_symbol


@cache
def lattice_radius(symbol: str) -> float:
    """Radius (Å) used for lattice estimates: Pauling's single-bond metallic radius where one is
    tabulated, else the empirical (Slater) atomic radius - mendeleev's ``metallic_radius`` and
    ``atomic_radius``, the convention of CHILI's generator. (pymatgen only ships 12-coordinate
    metallic radii, which are 5-25 % larger for alkali and transition metals and shrink every
    estimated oxide cell relative to CHILI's.)"""
    from mendeleev import element  # imported here: a ~1 s import only cell estimates need

    sym = normalize_symbol(symbol)
    el = element(sym)
    r = el.metallic_radius if el.metallic_radius is not None else el.atomic_radius
    return float(r) / 100.0 if r is not None else atomic_radius(sym)


@dataclass(frozen=True)
class Reference:
    """One experimental compound of a structure type.

    ``metals``: cation element -> count per formula unit; ``anion``: the anion element;
    ``a``, ``c`` in Å (c None for cubic); ``x``: free coordinate where known (rutile O x,
    wurtzite u, spinel O u in origin choice 1), else None.
    """

    compound: str
    metals: tuple
    anion: str
    a: float
    c: float | None = None
    x: float | None = None
    source: str = "Wyckoff, Crystal Structures"
    hydroxide: bool = False  # M(OH)2: anion O, H ignored in R, never looked up as the oxide

    def radius_sum(self, n_metal: int = 1, n_anion: int = 1) -> float:
        """``n_metal * <r_M> + n_anion * r_X`` (Å): count-weighted mean metal radius, metallic
        radii where tabulated (see module doc); the type's formula gives the multipliers."""
        n = sum(k for _, k in self.metals)
        rm = sum(lattice_radius(m) * k for m, k in self.metals) / n
        return n_metal * rm + n_anion * lattice_radius(self.anion)


def _r(compound, metals, anion, a, c=None, x=None, source="Wyckoff, Crystal Structures", hydroxide=False):
    if isinstance(metals, str):
        metals = ((metals, 1),)
    return Reference(compound, tuple(metals), anion, a, c, x, source, hydroxide)


_LB = "Landolt-Börnstein III/17, III/41"
_WEST = "West, Solid State Chemistry and its Applications, ch. 1"
_PEARSON = "Pearson, Handbook of Lattice Spacings and Structures of Metals and Alloys"
_MIN = "mineralogical literature (e.g. Deer, Howie & Zussman)"

REFERENCES: dict[str, list[Reference]] = {
    "rock_salt": [
        _r("MgO", "Mg", "O", 4.211), _r("CaO", "Ca", "O", 4.811), _r("SrO", "Sr", "O", 5.160),
        _r("BaO", "Ba", "O", 5.523), _r("NiO", "Ni", "O", 4.177), _r("MnO", "Mn", "O", 4.445),
        _r("FeO", "Fe", "O", 4.307), _r("CoO", "Co", "O", 4.260), _r("CdO", "Cd", "O", 4.695),
    ],
    "zinc_blende": [
        _r("ZnS", "Zn", "S", 5.409, source=_LB), _r("ZnSe", "Zn", "Se", 5.668, source=_LB),
        _r("ZnTe", "Zn", "Te", 6.104, source=_LB), _r("CdTe", "Cd", "Te", 6.481, source=_LB),
        _r("GaP", "Ga", "P", 5.451, source=_LB), _r("GaAs", "Ga", "As", 5.653, source=_LB),
        _r("InP", "In", "P", 5.869, source=_LB), _r("InAs", "In", "As", 6.058, source=_LB),
        _r("AlAs", "Al", "As", 5.661, source=_LB), _r("CuCl", "Cu", "Cl", 5.420),
        _r("CuBr", "Cu", "Br", 5.696), _r("CuI", "Cu", "I", 6.054),
    ],
    "fluorite": [
        _r("CeO2", "Ce", "O", 5.411), _r("ThO2", "Th", "O", 5.597), _r("UO2", "U", "O", 5.470),
        _r("NpO2", "Np", "O", 5.434), _r("PuO2", "Pu", "O", 5.396), _r("CaF2", "Ca", "F", 5.463),
        _r("SrF2", "Sr", "F", 5.800), _r("BaF2", "Ba", "F", 6.200), _r("CdF2", "Cd", "F", 5.388),
        _r("beta-PbF2", "Pb", "F", 5.940), _r("SrCl2", "Sr", "Cl", 6.977, source=_WEST),
        _r("PrO2", "Pr", "O", 5.392, source=_WEST), _r("HgF2", "Hg", "F", 5.54),
    ],
    "antifluorite": [
        _r("Li2O", "Li", "O", 4.611), _r("Na2O", "Na", "O", 5.550), _r("K2O", "K", "O", 6.436),
        _r("Rb2O", "Rb", "O", 6.755), _r("Li2S", "Li", "S", 5.708), _r("Na2S", "Na", "S", 6.539),
        _r("K2S", "K", "S", 7.406), _r("Li2Se", "Li", "Se", 6.002), _r("Li2Te", "Li", "Te", 6.517),
        _r("Na2Se", "Na", "Se", 6.825), _r("Na2Te", "Na", "Te", 7.314), _r("K2Se", "K", "Se", 7.676),
        _r("K2Te", "K", "Te", 8.152),
    ],
    "wurtzite": [
        _r("ZnO", "Zn", "O", 3.250, 5.207, 0.382, _LB), _r("BeO", "Be", "O", 2.698, 4.380, 0.378),
        _r("ZnS (wurtzite)", "Zn", "S", 3.821, 6.257, source=_LB), _r("CdS", "Cd", "S", 4.137, 6.716, source=_LB),
        _r("CdSe", "Cd", "Se", 4.300, 7.011, source=_LB), _r("GaN", "Ga", "N", 3.189, 5.185, 0.377, _LB),
        _r("AlN", "Al", "N", 3.112, 4.982, 0.382, _LB), _r("InN", "In", "N", 3.545, 5.703, source=_LB),
    ],
    "nickel_arsenide": [
        _r("NiAs", "Ni", "As", 3.619, 5.034), _r("NiS", "Ni", "S", 3.440, 5.351),
        _r("CoS", "Co", "S", 3.367, 5.160), _r("MnTe", "Mn", "Te", 4.148, 6.711),
        _r("NiSb", "Ni", "Sb", 3.942, 5.155), _r("FeS", "Fe", "S", 3.438, 5.880, source=_WEST),
        _r("NiSe", "Ni", "Se", 3.661, 5.356, source=_WEST), _r("NiTe", "Ni", "Te", 3.957, 5.354, source=_WEST),
        _r("CoSe", "Co", "Se", 3.629, 5.301, source=_WEST), _r("CoTe", "Co", "Te", 3.886, 5.360, source=_WEST),
        _r("CoSb", "Co", "Sb", 3.866, 5.188, source=_PEARSON), _r("CrSb", "Cr", "Sb", 4.108, 5.440, source=_PEARSON),
        _r("MnAs", "Mn", "As", 3.710, 5.691, source=_PEARSON), _r("MnSb", "Mn", "Sb", 4.120, 5.784, source=_PEARSON),
        _r("PtSb", "Pt", "Sb", 4.130, 5.472, source=_PEARSON), _r("PtSn", "Pt", "Sn", 4.103, 5.428, source=_PEARSON),
        _r("PtBi", "Pt", "Bi", 4.315, 5.490, source=_PEARSON), _r("NiSn", "Ni", "Sn", 4.048, 5.123, source=_PEARSON),
    ],
    # Halides and the B2 (CsCl-type) intermetallics: with only large-cation halides the line
    # extrapolates badly to small metals; the intermetallics anchor the small-radius end.
    "caesium_chloride": [
        _r("CsCl", "Cs", "Cl", 4.123), _r("CsBr", "Cs", "Br", 4.286), _r("CsI", "Cs", "I", 4.567),
        _r("TlCl", "Tl", "Cl", 3.842), _r("TlBr", "Tl", "Br", 3.985),
        _r("CuZn (beta-brass)", "Cu", "Zn", 2.945, source=_PEARSON),
        _r("NiAl", "Ni", "Al", 2.887, source=_PEARSON),
        _r("AuZn", "Au", "Zn", 3.190, source=_PEARSON),
        _r("AgZn", "Ag", "Zn", 3.156, source=_PEARSON),
        _r("CuPd", "Cu", "Pd", 2.988, source=_PEARSON),
        _r("AuMg", "Au", "Mg", 3.259, source=_PEARSON),
        _r("LiAg", "Li", "Ag", 3.168, source=_PEARSON),
    ],
    "rutile": [
        _r("TiO2", "Ti", "O", 4.594, 2.959, 0.3048, _MIN), _r("SnO2", "Sn", "O", 4.737, 3.186, 0.3071, _MIN),
        _r("RuO2", "Ru", "O", 4.492, 3.106, 0.3058), _r("IrO2", "Ir", "O", 4.498, 3.154),
        _r("CrO2", "Cr", "O", 4.421, 2.917), _r("beta-MnO2", "Mn", "O", 4.398, 2.873, source=_MIN),
        _r("GeO2 (rutile)", "Ge", "O", 4.395, 2.859), _r("PbO2", "Pb", "O", 4.955, 3.383, source=_MIN),
        _r("MgF2", "Mg", "F", 4.621, 3.052, 0.3030),
    ],
    "cadmium_iodide": [
        _r("CdI2", "Cd", "I", 4.240, 6.840), _r("PbI2", "Pb", "I", 4.557, 6.979),
        _r("MgI2", "Mg", "I", 4.140, 6.880), _r("CaI2", "Ca", "I", 4.480, 6.960),
        _r("TiS2", "Ti", "S", 3.407, 5.695), _r("ZrS2", "Zr", "S", 3.662, 5.813),
        _r("SnS2", "Sn", "S", 3.648, 5.899), _r("TiSe2", "Ti", "Se", 3.540, 6.008),
        _r("CoI2", "Co", "I", 3.96, 6.65, source=_WEST), _r("FeI2", "Fe", "I", 4.04, 6.75, source=_WEST),
        _r("MnI2", "Mn", "I", 4.16, 6.82, source=_WEST), _r("MnBr2", "Mn", "Br", 3.82, 6.19, source=_WEST),
        _r("FeBr2", "Fe", "Br", 3.74, 6.17, source=_WEST), _r("CoBr2", "Co", "Br", 3.68, 6.12, source=_WEST),
        _r("TiCl2", "Ti", "Cl", 3.561, 5.875, source=_WEST), _r("VCl2", "V", "Cl", 3.601, 5.835, source=_WEST),
        _r("Mg(OH)2", "Mg", "O", 3.147, 4.769, source=_MIN, hydroxide=True),
        _r("Ca(OH)2", "Ca", "O", 3.589, 4.911, source=_MIN, hydroxide=True),
        _r("Ni(OH)2", "Ni", "O", 3.117, 4.595, source=_WEST, hydroxide=True),
        _r("Co(OH)2", "Co", "O", 3.173, 4.640, source=_WEST, hydroxide=True),
        _r("Cd(OH)2", "Cd", "O", 3.48, 4.67, source=_WEST, hydroxide=True),
    ],
    "cadmium_chloride": [  # hexagonal setting of R-3m (three layers per c)
        _r("CdCl2", "Cd", "Cl", 3.854, 17.457), _r("MgCl2", "Mg", "Cl", 3.641, 17.670),
        _r("MnCl2", "Mn", "Cl", 3.711, 17.590), _r("FeCl2", "Fe", "Cl", 3.579, 17.536),
        _r("CoCl2", "Co", "Cl", 3.544, 17.430), _r("NiCl2", "Ni", "Cl", 3.481, 17.400),
        _r("CdBr2", "Cd", "Br", 3.950, 18.670),
    ],
    "rhenium_trioxide": [
        _r("ReO3", "Re", "O", 3.748), _r("ScF3", "Sc", "F", 4.013), _r("NbF3", "Nb", "F", 3.903),
        _r("Cu3N (anti-ReO3)", "Cu", "N", 3.815), _r("delta-UO3", "U", "O", 4.156, source=_WEST),
        _r("MoF3", "Mo", "F", 3.8985, source=_WEST), _r("TaF3", "Ta", "F", 3.9012, source=_WEST),
    ],
    "spinel": [  # x = oxygen u in origin choice 1
        _r("Fe3O4", "Fe", "O", 8.396, x=0.3799, source=_MIN), _r("Co3O4", "Co", "O", 8.084, x=0.388),
        _r("MgAl2O4", (("Mg", 1), ("Al", 2)), "O", 8.083, x=0.387, source=_MIN),
        _r("ZnFe2O4", (("Zn", 1), ("Fe", 2)), "O", 8.441), _r("NiFe2O4", (("Ni", 1), ("Fe", 2)), "O", 8.339),
        _r("CoFe2O4", (("Co", 1), ("Fe", 2)), "O", 8.392), _r("ZnAl2O4", (("Zn", 1), ("Al", 2)), "O", 8.086),
        _r("MgCr2O4", (("Mg", 1), ("Cr", 2)), "O", 8.333), _r("ZnCr2O4", (("Zn", 1), ("Cr", 2)), "O", 8.327),
        _r("MnFe2O4", (("Mn", 1), ("Fe", 2)), "O", 8.499), _r("CdFe2O4", (("Cd", 1), ("Fe", 2)), "O", 8.69),
        _r("CdCr2O4", (("Cd", 1), ("Cr", 2)), "O", 8.567), _r("ZnGa2O4", (("Zn", 1), ("Ga", 2)), "O", 8.335),
        _r("GeCo2O4", (("Ge", 1), ("Co", 2)), "O", 8.318, source=_WEST),
        _r("GeFe2O4", (("Ge", 1), ("Fe", 2)), "O", 8.411, source=_WEST),
        _r("CdCr2S4", (("Cd", 1), ("Cr", 2)), "S", 10.24), _r("CdCr2Se4", (("Cd", 1), ("Cr", 2)), "Se", 10.74),
        _r("ZnCr2Se4", (("Zn", 1), ("Cr", 2)), "Se", 10.50), _r("CuCr2Se4", (("Cu", 1), ("Cr", 2)), "Se", 10.36),
    ],
}

# Space-group number, formula, and how each type is generated:
# (space group symbol, [(role, fractional coordinate template)], lattice kind).
# role "M" = metal, "O" = oxygen; coordinates containing "x" use the fitted free parameter.
_TYPES = {
    "rock_salt": ("Fm-3m", 225, "MO", "cubic", [("M", (0, 0, 0)), ("O", (0.5, 0.5, 0.5))]),
    "zinc_blende": ("F-43m", 216, "MO", "cubic", [("M", (0, 0, 0)), ("O", (0.25, 0.25, 0.25))]),
    "fluorite": ("Fm-3m", 225, "MO2", "cubic", [("M", (0, 0, 0)), ("O", (0.25, 0.25, 0.25))]),
    "antifluorite": ("Fm-3m", 225, "M2O", "cubic", [("O", (0, 0, 0)), ("M", (0.25, 0.25, 0.25))]),
    "wurtzite": ("P6_3mc", 186, "MO", "hexagonal", [("M", (1 / 3, 2 / 3, 0)), ("O", (1 / 3, 2 / 3, "x"))]),
    "nickel_arsenide": ("P6_3/mmc", 194, "MO", "hexagonal", [("M", (0, 0, 0)), ("O", (1 / 3, 2 / 3, 0.25))]),
    "caesium_chloride": ("Pm-3m", 221, "MO", "cubic", [("M", (0, 0, 0)), ("O", (0.5, 0.5, 0.5))]),
    "rutile": ("P4_2/mnm", 136, "MO2", "tetragonal", [("M", (0, 0, 0)), ("O", ("x", "x", 0))]),
    "cadmium_iodide": ("P-3m1", 164, "MO2", "hexagonal", [("M", (0, 0, 0)), ("O", (1 / 3, 2 / 3, 0.25))]),
    "cadmium_chloride": ("R-3m", 166, "MO2", "hexagonal", [("M", (0, 0, 0)), ("O", (0, 0, 0.25))]),
    "rhenium_trioxide": ("Pm-3m", 221, "MO3", "cubic", [("M", (0, 0, 0)), ("O", (0.5, 0, 0))]),
    "spinel": ("Fd-3m", 227, "M3O4", "cubic",
               [("M", (0, 0, 0)), ("M", (0.625, 0.625, 0.625)), ("O", ("x", "x", "x"))]),
}

CHILI_CRYSTAL_TYPES: tuple[str, ...] = tuple(_TYPES)
"""The twelve type names accepted by :func:`build_chili_crystal`."""

_ALIASES = {
    "nacl": "rock_salt", "rocksalt": "rock_salt", "zincblende": "zinc_blende", "sphalerite": "zinc_blende",
    "caf2": "fluorite", "anti_fluorite": "antifluorite", "zno": "wurtzite", "nias": "nickel_arsenide",
    "cscl": "caesium_chloride", "cesium_chloride": "caesium_chloride", "tio2": "rutile",
    "cdi2": "cadmium_iodide", "cdcl2": "cadmium_chloride", "reo3": "rhenium_trioxide",
}


def space_group_number(crystal_type: str) -> int:
    """International space-group number of a CHILI type."""
    return _TYPES[_canonical(crystal_type)][1]


def _canonical(crystal_type: str) -> str:
    key = str(crystal_type).strip().lower().replace(" ", "_").replace("-", "_")
    key = _ALIASES.get(key, _ALIASES.get(key.replace("_", ""), key))
    if key not in _TYPES:
        raise InputError(f"unknown CHILI crystal type {crystal_type!r}; choose one of {', '.join(_TYPES)}")
    return key


@dataclass(frozen=True)
class TypeFit:
    """Fitted radius -> lattice relations of one type (all lengths Å).

    ``a = a_slope * (m r_M + n r_X) + a_intercept`` (weighted radius sum, see module doc); for hexagonal/tetragonal types either
    ``c = c_slope * rsum + c_intercept`` (layered types) or ``c = c_over_a * a``; ``x`` the mean
    free coordinate (None if the type has none); ``rms_a`` the fit's rms residual in a.
    """

    a_slope: float
    a_intercept: float
    rms_a: float
    c_slope: float | None = None
    c_intercept: float | None = None
    c_over_a: float | None = None
    x: float | None = None


# c fitted linearly (layer types), c/a averaged (the rest of the non-cubic types).
_C_LINEAR = {"cadmium_iodide", "cadmium_chloride"}
_C_RATIO = {"wurtzite", "nickel_arsenide", "rutile"}
# Default free coordinate when no tabulated compound of the type lists one.
_X_DEFAULT = {"wurtzite": 0.375, "rutile": 0.305, "spinel": 0.385}


def fit_type(crystal_type: str) -> TypeFit:
    """Least-squares fit (``np.polyfit``, degree 1) of one type's table against the weighted radius sum."""
    return _fit(_canonical(crystal_type))


@cache
def _fit(key: str) -> TypeFit:
    refs = REFERENCES[key]
    rs = np.array([r.radius_sum(*formula_counts(key)) for r in refs])
    a = np.array([r.a for r in refs])
    ka, ca = np.polyfit(rs, a, 1)
    rms = float(np.sqrt(np.mean((ka * rs + ca - a) ** 2)))
    kw: dict = {}
    if key in _C_LINEAR:
        c = np.array([r.c for r in refs])
        kw["c_slope"], kw["c_intercept"] = (float(v) for v in np.polyfit(rs, c, 1))
    elif key in _C_RATIO:
        kw["c_over_a"] = float(np.mean([r.c / r.a for r in refs]))
    if key in _X_DEFAULT:
        xs = [r.x for r in refs if r.x is not None]
        kw["x"] = float(np.mean(xs)) if xs else _X_DEFAULT[key]
    return TypeFit(float(ka), float(ca), rms, **kw)


def _tabulated(key: str, metal: str, anion: str) -> Reference | None:
    for ref in REFERENCES[key]:
        if ref.metals == ((metal, 1),) and ref.anion == anion and ref.hydroxide is False:
            return ref
    return None


def lattice_parameters(crystal_type: str, metal: str, anion: str = "O") -> dict:
    """``{'a', 'c', 'x'}`` (Å, Å or None, fractional or None) of M_mO_n in a CHILI type: the
    tabulated cell when the compound itself is in :data:`REFERENCES` (e.g. rock-salt MgO),
    otherwise the type's radius fit (module doc)."""
    key = _canonical(crystal_type)
    fit = _fit(key)
    n_m, n_o = formula_counts(key)
    metal, anion = normalize_symbol(metal), normalize_symbol(anion)
    known = _tabulated(key, metal, anion)
    if known is not None:  # a real compound: its measured cell beats any estimate
        return {"a": known.a, "c": known.c, "x": known.x if known.x is not None else fit.x}
    rsum = n_m * lattice_radius(metal) + n_o * lattice_radius(anion)
    a = fit.a_slope * rsum + fit.a_intercept
    if fit.c_slope is not None:
        c = fit.c_slope * rsum + fit.c_intercept
    elif fit.c_over_a is not None:
        c = fit.c_over_a * a
    else:
        c = None
    if a <= 0 or (c is not None and c <= 0):
        raise InputError(f"radius fit gives a non-positive lattice constant for {metal} in {key}")
    return {"a": float(a), "c": None if c is None else float(c), "x": fit.x}


def build_chili_crystal(crystal_type: str, metal: str, anion: str = "O") -> Crystal:
    """Conventional cell of the oxide of ``metal`` in one of the 12 CHILI crystal types.

    Args:
        crystal_type: one of :data:`CHILI_CRYSTAL_TYPES` (aliases such as ``'NaCl'``, ``'CdI2'``
            accepted).
        metal: metal (or metalloid) element symbol.
        anion: the anion, ``'O'`` in CHILI; any element works.

    Returns:
        Crystal with ``properties['crystal_type']``, ``['space_group_number']``,
        ``['metal']`` and the estimated ``['a']``, ``['c']`` (Å).
    """
    from pymatgen.core import Lattice, Structure

    key = _canonical(crystal_type)
    metal = normalize_symbol(metal)
    anion = normalize_symbol(anion)
    if not is_metal(metal):
        raise InputError(f"{metal} is not a metal; CHILI types take a metal on the cation site")
    sg_symbol, sg_number, formula, kind, sites = _TYPES[key]
    p = lattice_parameters(key, metal, anion)
    a, c, x = p["a"], p["c"], p["x"]
    lattice = {"cubic": lambda: Lattice.cubic(a), "hexagonal": lambda: Lattice.hexagonal(a, c),
               "tetragonal": lambda: Lattice.tetragonal(a, c)}[kind]()
    species = [metal if role == "M" else anion for role, _ in sites]
    coords = [[x if v == "x" else v for v in xyz] for _, xyz in sites]
    structure = Structure.from_spacegroup(sg_symbol, lattice, species, coords)
    n_m, n_o = _FORMULA_COUNTS[formula]
    name = f"{metal}{n_m if n_m > 1 else ''}{anion}{n_o if n_o > 1 else ''} ({key})"
    return Crystal(
        structure.lattice.matrix.copy(), structure.frac_coords.copy(), [s.specie.symbol for s in structure],
        name=name,
        properties={"crystal_type": key, "space_group_number": sg_number, "metal": metal, "anion": anion,
                    "a": a, "c": c if c is not None else a},
    )


_FORMULA_COUNTS = {"MO": (1, 1), "MO2": (1, 2), "M2O": (2, 1), "MO3": (1, 3), "M3O4": (3, 4)}


def formula_counts(crystal_type: str) -> tuple[int, int]:
    """(metal, anion) atoms per formula unit of a type, e.g. (2, 1) for antifluorite M2O."""
    return _FORMULA_COUNTS[_TYPES[_canonical(crystal_type)][2]]


def fit_report() -> str:
    """Human-readable table of every fit and its residuals (for checking the reference data)."""
    lines = []
    for key, refs in REFERENCES.items():
        f = _fit(key)
        n_m, n_o = formula_counts(key)
        lines.append(f"{key}: a = {f.a_slope:.4f} ({n_m} rM + {n_o} rX) + {f.a_intercept:.4f}  rms {f.rms_a:.3f} Å")
        for r in refs:
            rs = r.radius_sum(n_m, n_o)
            lines.append(f"   {r.compound:18s} rsum {rs:.3f}  a {r.a:.3f}  fit {f.a_slope * rs + f.a_intercept:.3f}")
    return "\n".join(lines)
