"""Electron densities on CrystalNet's "Cartesian-mapped" grid: procrystal, file readers, cache.

The grid: ``rho[i, j, k]`` is the density (e⁻/Å³) at fractional coordinates
``(i / n0, j / n1, k / n2)`` (VASP's convention), 50³ by default, so the unit cell is resampled
along its own lattice vectors whatever its shape.

Procrystal density (independent neutral atoms). The Waasmaier-Kirfel form factor
f0(s) = c + Σ a_i exp(-b_i s²), s = |g|/2 (g in 1/Å, no 2π) is the Fourier transform of the atom's
density, so each Gaussian term transforms back analytically:

    a exp(-b s²)  ->  a (4π/b)^{3/2} exp(-4π² r² / b)      (integral a, σ² = b / 8π²).

The constant c is a delta function in real space. We give it (and every other term) a finite
width by folding in an isotropic Debye-Waller factor exp(-B s²), i.e. b_i -> b_i + B and
b_c = B, with B = ``b_iso`` (default 1 Å², a typical room-temperature value: the c term becomes
a Gaussian of σ = 0.11 Å). Why a common B rather than a width for c alone: for several heavy
elements the WK fit pairs a large negative c with a large a_i of b_i ≈ 0 (even slightly negative);
only a common B keeps these two spikes the same shape so they cancel as they do in f0.

Sampling: a Gaussian narrower than ~half a voxel is not represented by 50 points per edge (its
grid sum no longer integrates to its weight). Each term's b is therefore raised to at least
8π² (``min_sigma_voxels`` · h)², h = the longest voxel edge; this preserves every term's
integral, so the grid still integrates to Σ Z.

Evaluation (why not the obvious sum over atoms × periodic images × 125k points: wide outer-shell
terms, b up to ~230 Å², reach ~9 Å, i.e. hundreds of images per atom in a small cell - seconds per
crystal): narrow terms (σ < 2 h) are summed in real space on a small box of voxels around each
atom (5 σ cut-off, periodic wrap by index); wide terms (σ ≥ 2 h, whose Fourier coefficients are
< 1e-8 at the grid's Nyquist frequency) are summed in reciprocal space and brought back with one
inverse FFT. Both are exact to the stated tolerances; :func:`procrystal_density_at` is the brute
force real-space sum used to check them (and to evaluate the density off the grid).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from nanosolve._io import atomic_path
from nanosolve.errors import InputError
from nanosolve.scattering.form_factors import wk_coefficients
from nanosolve.structures.crystal import Crystal

GRID = 50
DEFAULT_B_ISO = 1.0  # Å²
DEFAULT_MIN_SIGMA_VOXELS = 0.6  # Riemann-sum error of a Gaussian ~ exp(-2π² (σ/h)²) = 8e-4 here
_CUTOFF_SIGMAS = 5.0  # 3-D Gaussian mass beyond 5 σ: 1.5e-5
_WIDE_SIGMA_VOXELS = 2.0  # exp(-π² (σ/h)² / 2) = 3e-9 at the Nyquist frequency


def _grid_shape(n) -> tuple[int, int, int]:
    shape = (int(n),) * 3 if np.isscalar(n) else tuple(int(v) for v in n)
    if len(shape) != 3 or min(shape) < 2:
        raise InputError(f"grid must be an integer >= 2 or three of them, got {n!r}")
    return shape


def voxel_edge(lattice: np.ndarray, shape) -> float:
    """Longest voxel edge h (Å) of ``shape`` on ``lattice`` [3, 3]."""
    return float(np.max(np.linalg.norm(lattice, axis=1) / np.asarray(shape)))


def gaussian_terms(crystal: Crystal, b_iso: float = DEFAULT_B_ISO, b_floor: float = 0.0):
    """Real-space Gaussian terms of every atom.

    Returns:
        weights [N, 6] (electrons, occupancy-weighted; the 6th term is c) and widths b [N, 6]
        (Å², after adding ``b_iso`` and flooring at ``b_floor``); term density
        w (4π/b)^{3/2} exp(-4π² r²/b).
    """
    if not np.isfinite(b_iso) or b_iso < 0:
        raise InputError(f"b_iso must be >= 0 Å², got {b_iso}")
    coef = np.stack([wk_coefficients(s) for s in crystal.species])  # a1..a5, c, b1..b5
    w = np.concatenate([coef[:, :5], coef[:, 5:6]], axis=1) * crystal.occupancies[:, None]
    b = np.concatenate([coef[:, 6:], np.zeros((len(crystal), 1))], axis=1) + b_iso
    b = np.maximum(b, b_floor)
    if np.any(b <= 1e-4):
        raise InputError("a Gaussian term has zero width: give b_iso > 0 or min_sigma_voxels > 0")
    return w, b


def _b_floor(lattice, shape, min_sigma_voxels) -> float:
    if not min_sigma_voxels:
        return 0.0
    return 8 * np.pi**2 * (float(min_sigma_voxels) * voxel_edge(lattice, shape)) ** 2


def _term_density(w, b, r2):
    return w * (4 * np.pi / b) ** 1.5 * np.exp(-4 * np.pi**2 * r2 / b)


def procrystal_density(crystal: Crystal, n=GRID, b_iso: float = DEFAULT_B_ISO,
                       min_sigma_voxels: float | None = DEFAULT_MIN_SIGMA_VOXELS) -> np.ndarray:
    """Procrystal electron density on the fractional grid.

    Args:
        crystal: the structure (occupancies weight the atoms).
        n: grid points per lattice vector (int or three ints).
        b_iso: Debye-Waller B (Å²) added to every Gaussian term (gives the c term its width).
        min_sigma_voxels: floor of every term's σ in units of the longest voxel edge (None: none).

    Returns:
        [n0, n1, n2] float64 density in e⁻/Å³ at fractional points (i/n0, j/n1, k/n2).
    """
    shape = _grid_shape(n)
    lat = crystal.lattice
    h = voxel_edge(lat, shape)
    w, b = gaussian_terms(crystal, b_iso, _b_floor(lat, shape, min_sigma_voxels))
    sigma = np.sqrt(b / (8 * np.pi**2))
    wide = sigma >= _WIDE_SIGMA_VOXELS * h
    rho = _narrow_real_space(crystal, np.where(wide, 0.0, w), b, sigma * ~wide, shape)
    if wide.any():
        rho += _wide_reciprocal(crystal, np.where(wide, w, 0.0), b, shape)
    return rho


def _narrow_real_space(crystal, w, b, sigma, shape) -> np.ndarray:
    """Σ of the (w, b) terms, each cut at 5 σ, on a box of voxels around every atom."""
    n = np.asarray(shape)
    out = np.zeros(int(np.prod(n)))
    if not np.any(w):
        return out.reshape(shape)
    lat = crystal.lattice
    r_cut = _CUTOFF_SIGMAS * sigma.max()
    recip_len = np.linalg.norm(np.linalg.inv(lat), axis=0)  # |b*_k|: fractional extent per Å
    half = np.ceil(r_cut * recip_len * n).astype(int)  # box half-widths in voxels
    x = crystal.frac_coords
    centre = np.round(x * n).astype(int)  # [N, 3]
    offs = [np.arange(-hk, hk + 1) for hk in half]
    idx = [centre[:, k, None] + offs[k][None, :] for k in range(3)]  # [N, bk] unwrapped indices
    du = [idx[k] / n[k] - x[:, k, None] for k in range(3)]  # fractional displacements
    cart = (du[0][:, :, None, None, None] * lat[0] + du[1][:, None, :, None, None] * lat[1]
            + du[2][:, None, None, :, None] * lat[2])  # [N, bx, by, bz, 3]
    r2 = np.einsum("...i,...i->...", cart, cart)
    vals = np.zeros_like(r2)
    for t in range(w.shape[1]):
        wt, bt = w[:, t], b[:, t]
        if not np.any(wt):
            continue
        vals += _term_density(wt[:, None, None, None], bt[:, None, None, None], r2)
    vals[r2 > r_cut * r_cut] = 0.0
    flat = ((idx[0] % n[0])[:, :, None, None] * n[1] * n[2] + (idx[1] % n[1])[:, None, :, None] * n[2]
            + (idx[2] % n[2])[:, None, None, :])
    out += np.bincount(flat.ravel(), vals.ravel(), minlength=out.size)
    return out.reshape(shape)


def _wide_reciprocal(crystal, w, b, shape) -> np.ndarray:
    """Σ of the (w, b) terms via their Fourier series on the grid's hkl box and one inverse FFT."""
    lat = crystal.lattice
    freqs = [np.fft.fftfreq(m, 1.0 / m) for m in shape]  # integer h, k, l in FFT order
    recip = np.linalg.inv(lat).T  # rows b*_k, g = hkl @ recip (1/Å, no 2π)
    gmet = recip @ recip.T
    h0, h1, h2 = freqs
    g2 = (gmet[0, 0] * h0[:, None, None] ** 2 + gmet[1, 1] * h1[None, :, None] ** 2
          + gmet[2, 2] * h2[None, None, :] ** 2 + 2 * gmet[0, 1] * h0[:, None, None] * h1[None, :, None]
          + 2 * gmet[0, 2] * h0[:, None, None] * h2[None, None, :]
          + 2 * gmet[1, 2] * h1[None, :, None] * h2[None, None, :])
    s2 = g2 / 4.0
    coeff = np.zeros(shape, dtype=np.complex128)
    x = crystal.frac_coords
    # Atoms of one species share their form factor: group by (w, b) rows so f(hkl) is built once.
    rows = {}
    for j in range(len(crystal)):
        rows.setdefault((tuple(w[j]), tuple(b[j])), []).append(j)
    for (wj, bj), members in rows.items():
        wj, bj = np.asarray(wj), np.asarray(bj)
        if not np.any(wj):
            continue
        f = sum(wt * np.exp(-bt * s2) for wt, bt in zip(wj, bj) if wt)
        m = np.asarray(members)
        # exp(-2πi g·x) factorises over the three fractional axes.
        e = [np.exp(-2j * np.pi * np.outer(x[m, k], freqs[k])) for k in range(3)]
        struct = np.einsum("ja,jb,jc->abc", e[0], e[1], e[2])
        coeff += f * struct
    rho = np.fft.ifftn(coeff).real * (np.prod(shape) / crystal.volume)
    return rho


def procrystal_density_at(crystal: Crystal, frac_points, b_iso: float = DEFAULT_B_ISO,
                          b_floor: float = 0.0, chunk: int = 4096) -> np.ndarray:
    """Procrystal density (e⁻/Å³) at arbitrary fractional points [P, 3]: direct sum over atoms
    and all periodic images within 5 σ of the widest term. Slow (reference and off-grid use).

    ``b_floor`` (Å²) reproduces a grid's floor: 8π² (min_sigma_voxels · h)², see the module doc.
    """
    pts = np.asarray(frac_points, dtype=np.float64).reshape(-1, 3)
    w, b = gaussian_terms(crystal, b_iso, b_floor)
    lat = crystal.lattice
    r_cut = _CUTOFF_SIGMAS * np.sqrt(b.max() / (8 * np.pi**2))
    reach = np.ceil(r_cut * np.linalg.norm(np.linalg.inv(lat), axis=0)).astype(int) + 1
    grids = np.meshgrid(*[np.arange(-r, r + 1) for r in reach], indexing="ij")
    images = np.stack([g.ravel() for g in grids], axis=1).astype(np.float64)  # [T, 3]
    out = np.empty(len(pts))
    for s in range(0, len(pts), chunk):
        p = pts[s:s + chunk]
        acc = np.zeros(len(p))
        for j in range(len(crystal)):
            d = (p[:, None, :] - crystal.frac_coords[j] - images[None, :, :]) @ lat  # [p, T, 3]
            r2 = np.einsum("ptk,ptk->pt", d, d)
            for t in range(w.shape[1]):
                acc += _term_density(w[j, t], b[j, t], r2).sum(axis=1)
        out[s:s + chunk] = acc
    return out


def electron_count(rho: np.ndarray, lattice) -> float:
    """∫ρ dV over the cell (electrons) of a fractional-grid density."""
    return float(rho.sum() * abs(np.linalg.det(np.asarray(lattice))) / rho.size)


# ----- files ------------------------------------------------------------------------------
def resample_periodic(values: np.ndarray, shape=GRID, origin_frac=(0.0, 0.0, 0.0), order: int = 3) -> np.ndarray:
    """Resample a periodic fractional grid onto ``shape`` (cubic spline, periodic wrap).

    ``values[i, j, k]`` sits at fractional ``origin_frac + (i/m0, j/m1, k/m2)``; the result at
    ``(i/n0, j/n1, k/n2)``.
    """
    from scipy.ndimage import map_coordinates

    shape = _grid_shape(shape)
    src = np.asarray(values.shape)
    axes = [(np.arange(n) / n - origin_frac[k]) * src[k] for k, n in enumerate(shape)]
    coords = np.stack(np.meshgrid(*axes, indexing="ij"))
    return map_coordinates(np.asarray(values, dtype=np.float64), coords, order=order, mode="grid-wrap")


def read_density(path, n=GRID, cube_units: str = "bohr") -> tuple[np.ndarray, Crystal]:
    """Read a VASP CHGCAR/AECCAR/PARCHG or a Gaussian cube file onto the fractional grid.

    Args:
        path: file; ``*.cube``/``*.cub`` are read as cube (ase), anything else as CHGCAR (pymatgen).
        n: output grid (int or three ints).
        cube_units: the cube's data unit, ``'bohr'`` (e⁻/Bohr³, the cube standard) or ``'angstrom'``.

    Returns:
        (rho [n0, n1, n2] in e⁻/Å³, the file's structure as a :class:`Crystal`).
        CHGCAR stores ρ·V_cell, so its values are divided by the cell volume.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("density file not found", path)
    if path.suffix.lower() in (".cube", ".cub"):
        rho, crystal = _read_cube(path, cube_units)
        return rho if rho.shape == _grid_shape(n) else _resample_or_fail(rho, n, path, crystal), crystal
    from pymatgen.io.vasp import Chgcar

    try:
        chg = Chgcar.from_file(str(path))
        data = np.asarray(chg.data["total"], dtype=np.float64)
        crystal = Crystal.from_pymatgen(chg.structure)
    except InputError:
        raise
    except Exception as err:  # pymatgen raises many types on malformed files
        raise InputError(f"cannot read as VASP CHGCAR: {type(err).__name__}: {err}", path) from None
    rho = data / crystal.volume
    if not np.all(np.isfinite(rho)):
        raise InputError("density has non-finite values", path)
    return _resample_or_fail(rho, n, path, crystal), crystal


def _resample_or_fail(rho, n, path, crystal, origin_frac=(0.0, 0.0, 0.0)):
    if rho.ndim != 3 or min(rho.shape) < 2:
        raise InputError(f"density grid has shape {rho.shape}; need three axes of >= 2 points", path)
    return resample_periodic(rho, n, origin_frac)


def _read_cube(path: Path, cube_units: str):
    from ase.io.cube import read_cube
    from ase.units import Bohr

    if cube_units not in ("bohr", "angstrom"):
        raise InputError(f"cube_units must be 'bohr' or 'angstrom', got {cube_units!r}", path)
    try:
        with open(path) as fh:
            d = read_cube(fh)
    except Exception as err:  # ase raises ValueError/IndexError on truncated files
        raise InputError(f"cannot read as Gaussian cube: {type(err).__name__}: {err}", path) from None
    atoms, data = d["atoms"], np.asarray(d["data"], dtype=np.float64)
    if data.ndim != 3 or data.size == 0:
        raise InputError(f"cube data has shape {data.shape}", path)
    if not all(atoms.pbc) or abs(atoms.cell.volume) < 1e-6:
        raise InputError("cube grid does not span a periodic cell (molecular cubes are not supported)", path)
    crystal = Crystal.from_ase(atoms)
    origin_frac = np.linalg.solve(crystal.lattice.T, np.asarray(d["origin"], dtype=np.float64))
    rho = data / Bohr**3 if cube_units == "bohr" else data
    if not np.all(np.isfinite(rho)):
        raise InputError("density has non-finite values", path)
    return resample_periodic(rho, rho.shape, origin_frac) if np.any(np.abs(origin_frac) > 1e-9) else rho, crystal


# ----- cache ------------------------------------------------------------------------------
def density_key(crystal: Crystal, n=GRID, b_iso: float = DEFAULT_B_ISO,
                min_sigma_voxels: float | None = DEFAULT_MIN_SIGMA_VOXELS) -> str:
    """Hex SHA-256 of lattice, coordinates, species, occupancies and the density parameters."""
    h = hashlib.sha256()
    h.update(np.round(crystal.lattice, 8).astype(np.float64).tobytes())
    h.update(np.round(np.mod(crystal.frac_coords, 1.0), 8).astype(np.float64).tobytes())
    h.update(np.round(crystal.occupancies, 8).astype(np.float64).tobytes())
    h.update(",".join(crystal.species).encode())
    h.update(repr((_grid_shape(n), float(b_iso), min_sigma_voxels)).encode())
    return h.hexdigest()[:32]


def default_cache_dir() -> Path:
    """``$NANOSOLVE_CACHE/crystalnet_density`` or ``~/.cache/nanosolve/crystalnet_density``."""
    root = os.environ.get("NANOSOLVE_CACHE")
    base = Path(root) if root else Path.home() / ".cache" / "nanosolve"
    return base / "crystalnet_density"


def density_cache(crystal: Crystal, cache_dir=None, n=GRID, b_iso: float = DEFAULT_B_ISO,
                  min_sigma_voxels: float | None = DEFAULT_MIN_SIGMA_VOXELS,
                  dtype=np.float32) -> np.ndarray:
    """Procrystal density from ``cache_dir/<key>.npy``, computed and written (atomically) on a miss.

    Returns:
        [n0, n1, n2] density (e⁻/Å³) as ``dtype`` (float32 halves the disk use).
    """
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    f = cache / f"{density_key(crystal, n, b_iso, min_sigma_voxels)}.npy"
    if f.is_file():
        try:
            return np.load(f, allow_pickle=False)
        except (OSError, ValueError):  # a truncated file from a crash: recompute below
            pass
    rho = procrystal_density(crystal, n, b_iso, min_sigma_voxels).astype(dtype)
    with atomic_path(f) as tmp:  # unique temp name: parallel builds share this cache
        np.save(tmp, rho, allow_pickle=False)
    return rho
