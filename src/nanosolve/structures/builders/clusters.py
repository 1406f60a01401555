"""Mono-metallic clusters (FCC, BCC, SC, HCP, icosahedra, decahedra, octahedra) for any metal.

Geometry comes from ``ase.cluster`` (Wulff-type layer cutting of the bulk lattices and the
closed-shell magic-number polyhedra); this module only chooses the lattice constant from the
metal's metallic radius r (pymatgen, 12-coordinate) so that touching spheres give the nearest-
neighbour distance 2 r * scale:

    FCC a = 2√2 r,  BCC a = 4 r / √3,  SC a = 2 r,  HCP a = 2 r, c = √(8/3) a.

Icosahedra, decahedra and octahedra are FCC-derived in ASE and take the FCC lattice constant.
In the icosahedron the radial (shell-to-shell) distance is 2 r and the in-shell distance about
5 % longer: this strain is intrinsic to the shape.

Every builder returns a :class:`Particle` centred at the origin with ``properties``:
``shape``, ``parameters`` (the ASE arguments), ``element``, ``lattice_constant`` (Å; for HCP
also ``c``), ``nn_distance`` (Å, ideal nearest-neighbour distance 2 r * scale) and ``scale``.
"""

from __future__ import annotations

import numpy as np

from nanosolve.errors import InputError
from nanosolve.structures.elements import metallic_radius, normalize_symbol
from nanosolve.structures.particle import Particle

CLUSTER_SHAPES = ("fcc", "bcc", "sc", "hcp", "icosahedron", "decahedron", "octahedron")

_CUBIC_FACETS = ((1, 0, 0), (1, 1, 0), (1, 1, 1))
_HCP_FACETS = ((0, 0, 0, 1), (1, 0, -1, 0), (1, 1, -2, 0))


def lattice_constant(element: str, structure: str, scale: float = 1.0) -> float:
    """Lattice constant a (Å) of ``structure`` in fcc/bcc/sc/hcp giving touching metallic spheres × scale."""
    r = metallic_radius(normalize_symbol(element)) * _check_scale(scale)
    factors = {"fcc": 2 * np.sqrt(2), "bcc": 4 / np.sqrt(3), "sc": 2.0, "hcp": 2.0}
    if structure not in factors:
        raise InputError(f"unknown lattice {structure!r}; choose fcc, bcc, sc or hcp")
    return float(factors[structure] * r)


def _check_scale(scale) -> float:
    scale = float(scale)
    if not np.isfinite(scale) or scale <= 0:
        raise InputError(f"lattice scale factor must be positive, got {scale}")
    return scale


def _positive_ints(name: str, values, n: int | None = None) -> list[int]:
    vals = [int(v) for v in np.atleast_1d(values)]
    if any(v < 1 for v in vals) or (n is not None and len(vals) != n):
        want = f"{n} " if n is not None else ""
        raise InputError(f"{name} must be {want}positive integers, got {list(np.atleast_1d(values))}")
    return vals


def _particle(atoms, element: str, shape: str, parameters: dict, a: float, scale: float, **extra) -> Particle:
    p = Particle(atoms.get_positions(), atoms.get_chemical_symbols(), name=f"{element}{len(atoms)} {shape}")
    p = p.centered()
    p.properties = {
        "shape": shape, "parameters": parameters, "element": element, "lattice_constant": a,
        "nn_distance": float(2 * metallic_radius(element) * scale), "scale": scale, **extra,
    }
    return p


def _cubic(kind: str, element: str, layers, surfaces, scale: float) -> Particle:
    from ase.cluster import BodyCenteredCubic, FaceCenteredCubic, SimpleCubic

    element = normalize_symbol(element)
    scale = _check_scale(scale)
    surfaces = [tuple(int(h) for h in s) for s in surfaces]
    if any(len(s) != 3 for s in surfaces):
        raise InputError(f"cubic facets need three Miller indices each, got {surfaces}")
    layers = _positive_ints("layers", layers, len(surfaces))
    a = lattice_constant(element, kind, scale)
    factory = {"fcc": FaceCenteredCubic, "bcc": BodyCenteredCubic, "sc": SimpleCubic}[kind]
    atoms = factory(element, surfaces, layers, latticeconstant=a)
    return _particle(atoms, element, kind, {"surfaces": surfaces, "layers": layers}, a, scale)


def fcc_cluster(element: str, layers=(4, 5, 3), surfaces=_CUBIC_FACETS, scale: float = 1.0) -> Particle:
    """FCC cluster bounded by ``surfaces`` (Miller indices), ``layers[i]`` atomic layers from the centre to facet i."""
    return _cubic("fcc", element, layers, surfaces, scale)


def bcc_cluster(element: str, layers=(4, 5, 3), surfaces=_CUBIC_FACETS, scale: float = 1.0) -> Particle:
    """BCC cluster; arguments as :func:`fcc_cluster`."""
    return _cubic("bcc", element, layers, surfaces, scale)


def sc_cluster(element: str, layers=(4, 5, 3), surfaces=_CUBIC_FACETS, scale: float = 1.0) -> Particle:
    """Simple-cubic cluster; arguments as :func:`fcc_cluster`."""
    return _cubic("sc", element, layers, surfaces, scale)


def hcp_cluster(element: str, layers=(3, 3, 3), surfaces=_HCP_FACETS, scale: float = 1.0) -> Particle:
    """HCP cluster (ideal c/a = √(8/3)) bounded by Miller-Bravais ``surfaces`` (h, k, i, l)."""
    from ase.cluster import HexagonalClosedPacked

    element = normalize_symbol(element)
    scale = _check_scale(scale)
    surfaces = [tuple(int(h) for h in s) for s in surfaces]
    if any(len(s) != 4 or s[0] + s[1] + s[2] != 0 for s in surfaces):
        raise InputError(f"HCP facets need four Miller-Bravais indices (h, k, -h-k, l), got {surfaces}")
    layers = _positive_ints("layers", layers, len(surfaces))
    a = lattice_constant(element, "hcp", scale)
    c = float(np.sqrt(8.0 / 3.0) * a)
    atoms = HexagonalClosedPacked(element, surfaces, layers, latticeconstant={"a": a, "c": c})
    return _particle(atoms, element, "hcp", {"surfaces": surfaces, "layers": layers}, a, scale, c=c)


def icosahedron(element: str, shells: int = 3, scale: float = 1.0) -> Particle:
    """Mackay icosahedron with ``shells`` shells (1, 13, 55, 147, 309... atoms for 1, 2, 3, 4, 5)."""
    from ase.cluster import Icosahedron

    element = normalize_symbol(element)
    scale = _check_scale(scale)
    (shells,) = _positive_ints("shells", shells, 1)
    a = lattice_constant(element, "fcc", scale)
    return _particle(Icosahedron(element, shells, latticeconstant=a), element, "icosahedron",
                     {"shells": shells}, a, scale)


def decahedron(element: str, p: int = 3, q: int = 1, r: int = 0, scale: float = 1.0) -> Particle:
    """Ino/Marks decahedron (ASE's parameters).

    Args:
        p: atoms along the (100) facet edge perpendicular to the five-fold axis.
        q: atoms along the (100) facet edge parallel to the axis (q = 1: Ino-free pentagonal bipyramid).
        r: depth of the Marks re-entrance (0: none).
    """
    from ase.cluster import Decahedron

    element = normalize_symbol(element)
    scale = _check_scale(scale)
    p, q = _positive_ints("p, q", (p, q), 2)
    if int(r) < 0:
        raise InputError(f"Marks re-entrance depth r must be >= 0, got {r}")
    a = lattice_constant(element, "fcc", scale)
    return _particle(Decahedron(element, p, q, int(r), latticeconstant=a), element, "decahedron",
                     {"p": p, "q": q, "r": int(r)}, a, scale)


def octahedron(element: str, length: int = 4, cutoff: int = 0, scale: float = 1.0) -> Particle:
    """FCC octahedron with ``length`` atoms per edge, corners truncated by ``cutoff`` layers.

    ``length = 2 * cutoff + 1`` gives the cuboctahedron (13, 55, 147... atoms).
    """
    from ase.cluster import Octahedron

    element = normalize_symbol(element)
    scale = _check_scale(scale)
    (length,) = _positive_ints("length", length, 1)
    if not 0 <= int(cutoff) <= (length - 1) // 2:
        raise InputError(f"octahedron cutoff must be in 0..{(length - 1) // 2} for length {length}, got {cutoff}")
    a = lattice_constant(element, "fcc", scale)
    return _particle(Octahedron(element, length, int(cutoff), latticeconstant=a), element, "octahedron",
                     {"length": length, "cutoff": int(cutoff)}, a, scale)


def build_cluster(shape: str, element: str, scale: float = 1.0, **parameters) -> Particle:
    """Dispatch by shape name (one of :data:`CLUSTER_SHAPES`); ``parameters`` go to the builder."""
    builders = {"fcc": fcc_cluster, "bcc": bcc_cluster, "sc": sc_cluster, "hcp": hcp_cluster,
                "icosahedron": icosahedron, "decahedron": decahedron, "octahedron": octahedron}
    key = str(shape).strip().lower()
    if key not in builders:
        raise InputError(f"unknown cluster shape {shape!r}; choose one of {', '.join(CLUSTER_SHAPES)}")
    try:
        return builders[key](element, scale=scale, **parameters)
    except TypeError as err:  # wrong keyword for this shape
        raise InputError(f"bad parameters for a {key} cluster: {err}") from err


# --------------------------------------------------------------------------------------------
# spherical cuts and the motif library (a candidate source for PDF solution)

_LATTICE_OF_SHAPE = {"fcc": "fcc", "bcc": "bcc", "sc": "sc", "hcp": "hcp", "icosahedron": "fcc",
                     "decahedron": "fcc", "octahedron": "fcc", "sphere": None}


def sphere_cluster(element: str, lattice: str = "fcc", radius: float = 2.0, scale: float = 1.0) -> Particle:
    """Atoms of a bulk ``lattice`` (fcc/bcc/sc/hcp, ideal c/a) within ``radius`` nearest-neighbour
    distances of a lattice atom (the cluster is centred on that atom)."""
    from ase.build import bulk

    element = normalize_symbol(element)
    scale = _check_scale(scale)
    radius = float(radius)
    if not np.isfinite(radius) or radius < 1.0:
        raise InputError(f"sphere radius must be >= 1 nearest-neighbour distance, got {radius}")
    if lattice not in ("fcc", "bcc", "sc", "hcp"):
        raise InputError(f"unknown lattice {lattice!r}; choose fcc, bcc, sc or hcp")
    a = lattice_constant(element, lattice, scale)
    nn = float(2 * metallic_radius(element) * scale)
    if lattice == "hcp":
        atoms = bulk(element, "hcp", a=a, c=float(np.sqrt(8.0 / 3.0) * a))
    else:
        atoms = bulk(element, lattice, a=a, cubic=True)
    cell = atoms.cell.array
    # repeats along each cell vector: enough lattice planes to cover the sphere (plane spacing 1/|b_i|)
    spacing = 1.0 / np.linalg.norm(np.linalg.inv(cell).T, axis=1)
    reps = [int(np.ceil(radius * nn / h)) + 1 for h in spacing]
    grid = np.stack(np.meshgrid(*[np.arange(-k, k + 1) for k in reps], indexing="ij"), -1).reshape(-1, 3)
    pts = (grid @ cell)[:, None, :] + atoms.get_positions()[None, :, :]
    pts = pts.reshape(-1, 3) - atoms.get_positions()[0]
    keep = np.linalg.norm(pts, axis=1) <= radius * nn * (1 + 1e-9)
    x = pts[keep]
    p = Particle(x, [element] * len(x), name=f"{element}{len(x)} {lattice}-sphere").centered()
    p.properties = {"shape": "sphere", "parameters": {"lattice": lattice, "radius": radius}, "element": element,
                    "lattice_constant": a, "nn_distance": nn, "scale": scale}
    return p


def motif_of(shape: str, parameters: dict) -> str:
    """Motif name of a built cluster (the names of a PDF solve's ``motif`` field):
    icosahedron, decahedron (q = 1, r = 0), ino-decahedron (q > 1), marks-decahedron (r > 0),
    octahedron, truncated-octahedron, cuboctahedron, <lattice>-sphere, <lattice>-faceted."""
    if shape == "decahedron":
        return "marks-decahedron" if parameters.get("r", 0) > 0 else (
            "ino-decahedron" if parameters.get("q", 1) > 1 else "decahedron")
    if shape == "octahedron":
        length, cutoff = parameters["length"], parameters.get("cutoff", 0)
        if cutoff == 0:
            return "octahedron"
        return "cuboctahedron" if length == 2 * cutoff + 1 else "truncated-octahedron"
    if shape == "sphere":
        return f"{parameters['lattice']}-sphere"
    if shape in ("fcc", "bcc", "sc", "hcp"):
        return f"{shape}-faceted"
    return shape


#: motif -> structure family (the lattice / packing the PDF can tell apart at any size)
MOTIF_FAMILY = {"icosahedron": "icosahedral", "decahedron": "decahedral", "ino-decahedron": "decahedral",
                "marks-decahedron": "decahedral", "octahedron": "fcc", "truncated-octahedron": "fcc",
                "cuboctahedron": "fcc", "fcc-sphere": "fcc", "fcc-faceted": "fcc", "hcp-sphere": "hcp",
                "hcp-faceted": "hcp", "bcc-sphere": "bcc", "bcc-faceted": "bcc", "sc-sphere": "sc",
                "sc-faceted": "sc"}
LIBRARY_MOTIFS = tuple(MOTIF_FAMILY)


def _octahedron_atoms(length: int, cutoff: int) -> int:
    # full octahedron (2L³ + L)/3 minus 6 square pyramids of c layers: Σ_{k=1..c} k² each
    return (2 * length ** 3 + length) // 3 - 6 * cutoff * (cutoff + 1) * (2 * cutoff + 1) // 6


def library_parameters(motifs=LIBRARY_MOTIFS, min_atoms: int = 13, max_atoms: int = 4000) -> list[tuple[str, dict]]:
    """(shape, builder parameters) of the cluster library in a fixed order, before deduplication.

    Sizes run from ``min_atoms`` to about ``max_atoms`` per motif: icosahedra by shell, Ino/Marks
    decahedra over (p, q, r), octahedra over (edge length, corner cut), spheres of the four lattices at
    radii growing by ~2.5 % (about 8 % more atoms per step), faceted cuts of the four lattices with
    (100)/(110)/(111) (HCP: (0001)/(10-10)/(11-20)) layer counts (k+i, k+j, k), i, j in {0, 1}.
    Shapes whose atom count is outside the range are dropped by the caller after building
    (only the octahedra, whose count is known in closed form, are pre-filtered here).
    """
    motifs = set(motifs)
    unknown = motifs - set(LIBRARY_MOTIFS)
    if unknown:
        raise InputError(f"unknown motifs {sorted(unknown)}; choose from {', '.join(LIBRARY_MOTIFS)}")
    out: list[tuple[str, dict]] = []
    if "icosahedron" in motifs:
        out += [("icosahedron", {"shells": k}) for k in range(2, 16)
                if (10 * k ** 3 - 15 * k ** 2 + 11 * k - 3) // 3 <= max_atoms * 1.05]
    dec = {"decahedron", "ino-decahedron", "marks-decahedron"} & motifs
    if dec:
        for q in range(1, 9):
            for r in range(0, 3 if q <= 4 else 1):  # Marks re-entrance depth 1-2 on short columns
                for p in range(1, 14):  # growing p last: callers may stop a (q, r) series past their size limit
                    if motif_of("decahedron", {"p": p, "q": q, "r": r}) in dec:
                        out.append(("decahedron", {"p": p, "q": q, "r": r}))
    octs = {"octahedron", "truncated-octahedron", "cuboctahedron"} & motifs
    for length in range(2, 22):
        for cutoff in range(0, (length - 1) // 2 + 1):
            params = {"length": length, "cutoff": cutoff}
            n = _octahedron_atoms(length, cutoff)
            if motif_of("octahedron", params) in octs and min_atoms <= n <= max_atoms * 1.05:
                out.append(("octahedron", params))
    for lat in ("fcc", "bcc", "sc", "hcp"):
        if f"{lat}-sphere" in motifs:
            radius = 1.0
            density = {"fcc": np.sqrt(2.0), "hcp": np.sqrt(2.0), "bcc": 3.0 * np.sqrt(3.0) / 4.0, "sc": 1.0}[lat]
            while density * 4.0 / 3.0 * np.pi * radius ** 3 <= 1.1 * max_atoms:  # atoms per nn³ × sphere volume
                out.append(("sphere", {"lattice": lat, "radius": round(radius, 4)}))
                radius *= 1.025
        if f"{lat}-faceted" in motifs:
            surf = [list(s) for s in (_HCP_FACETS if lat == "hcp" else _CUBIC_FACETS)]
            density = {"fcc": np.sqrt(2.0), "hcp": np.sqrt(2.0), "bcc": 3.0 * np.sqrt(3.0) / 4.0, "sc": 1.0}[lat]
            for i in (0, 1):
                for j in (0, 1):
                    for k in range(1, 16):
                        if density * 4.0 / 3.0 * np.pi * (0.8 * k) ** 3 > 1.3 * max_atoms:  # k layers ≈ 0.8 k nn
                            break
                        out.append((lat, {"surfaces": surf, "layers": [k + i, k + j, k]}))
    return out


def build_library_cluster(shape: str, parameters: dict, element: str = "Cu", scale: float = 1.0) -> Particle:
    """A cluster of the library from (shape, parameters) (see :func:`library_parameters`)."""
    params = dict(parameters)
    if shape == "sphere":
        return sphere_cluster(element, params["lattice"], params["radius"], scale)
    if "surfaces" in params:
        params["surfaces"] = [tuple(s) for s in params["surfaces"]]
    return build_cluster(shape, element, scale=scale, **params)


def lattice_of(shape: str, parameters: dict) -> str:
    """Bulk lattice whose lattice constant a cluster of ``shape`` is built with (fcc/bcc/sc/hcp)."""
    if shape == "sphere":
        return parameters["lattice"]
    return _LATTICE_OF_SHAPE.get(shape, "fcc")
