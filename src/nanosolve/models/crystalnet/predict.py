"""CrystalNet inference: a measured or simulated powder pattern + a formula -> electron density on
the unit cell's 50³ fractional grid, its decoded atoms, and files (cube, PNGs, CIF).

The network predicts the density on the *fractional* grid; the cell itself is not an output of
the model (the paper took it as known). :func:`predict` therefore takes the cell (``cell``: a
for cubic, or a b c α β γ) or, for a cubic model without one, indexes the pattern itself with
:func:`index_cubic` (the smallest cubic a that indexes the strongest peaks).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nanosolve._io import atomic_path, atomic_write, atomic_write_text
from nanosolve.errors import InputError
from nanosolve.scattering.pattern import Pattern
from nanosolve.structures.crystal import Crystal, lattice_from_parameters


# ---- inputs ----------------------------------------------------------------------------------
def parse_formula(text) -> dict[str, float]:
    """{element: amount} from 'SrTiO3', 'Sr4Ti4O12', 'Sr:1,Ti:1,O:3' or a dict (amounts > 0, decimals
    allowed); InputError on an empty formula, an unknown element or a count <= 0 (see
    :func:`nanosolve.structures.formula.parse_formula`, the one parser)."""
    from nanosolve.structures.formula import parse_formula as _parse

    if not isinstance(text, dict) and not str(text or "").strip():
        raise InputError("no composition given: pass the formula, e.g. --formula SrTiO3")
    return {el: float(x) for el, x in _parse(text, integer=False).items()}


def parse_cell(text) -> np.ndarray:
    """[3, 3] lattice (rows, Å) from 'a' (cubic) or 'a,b,c,alpha,beta,gamma' (Å, degrees)."""
    try:
        vals = [float(v) for v in str(text).replace(",", " ").split()]
    except ValueError:
        raise InputError(f"cell must be numbers: 'a' or 'a b c alpha beta gamma', got {text!r}") from None
    if len(vals) == 1:
        vals = vals * 3 + [90.0] * 3
    if len(vals) != 6 or min(vals[:3]) <= 0:
        raise InputError(f"cell must be 'a' or 'a b c alpha beta gamma' with lengths > 0, got {text!r}")
    return lattice_from_parameters(*vals)


def _sums_of_three_squares(n_max: int) -> np.ndarray:
    r = np.arange(int(np.sqrt(n_max)) + 1)
    s = (r[:, None, None] ** 2 + r[None, :, None] ** 2 + r[None, None, :] ** 2).ravel()
    return np.unique(s[(s > 0) & (s <= n_max)])


def index_cubic(pattern: Pattern, n_peaks: int = 8, a_range=(2.0, 20.0), tol: float = 0.004) -> float:
    """Cubic lattice parameter a (Å) indexing the ``n_peaks`` strongest peaks of ``pattern``.

    Every peak's Q must lie within ``tol`` × Q (+0.002 Å⁻¹) of a line 2π √N / a, N = h² + k² + l²;
    the smallest such a wins (any multiple √m · a of a solution also indexes everything).
    InputError if no a in ``a_range`` does. Known ambiguity: a body-centred cell whose N = 14 line
    is not among the peaks (e.g. W with Cu Kα below 2θ = 130°) indexes as primitive with a/√2 -
    exactly as it would by hand; give the cell then.
    """
    from scipy.signal import find_peaks

    q = pattern.to_q()
    y = q.y - q.y.min()
    if y.max() <= 0:
        raise InputError("pattern has no peaks to index", pattern.metadata.get("source"))
    idx, props = find_peaks(y, prominence=0.03 * y.max())
    if idx.size < 2:
        raise InputError("fewer than 2 peaks found: cannot index a cubic cell; give --cell",
                         pattern.metadata.get("source"))
    top = idx[np.argsort(-props["prominences"])[:n_peaks]]
    qp = np.sort(q.x[top])
    allowed = _sums_of_three_squares(2000)
    a_grid = np.arange(a_range[0], a_range[1], 0.0005)
    n_obs = (qp[None, :] * a_grid[:, None] / (2 * np.pi)) ** 2  # [A, K]
    pos = np.clip(np.searchsorted(allowed, n_obs), 1, len(allowed) - 1)
    near = np.where(np.abs(allowed[pos - 1] - n_obs) < np.abs(allowed[pos] - n_obs), allowed[pos - 1], allowed[pos])
    q_line = 2 * np.pi * np.sqrt(near) / a_grid[:, None]
    ok = np.all(np.abs(q_line - qp[None, :]) <= tol * qp[None, :] + 0.002, axis=1)
    if not ok.any():
        raise InputError("no cubic cell indexes the strongest peaks; give the cell with --cell",
                         pattern.metadata.get("source"))
    first = int(np.argmax(ok))
    run = first
    while run + 1 < len(ok) and ok[run + 1]:
        run += 1
    return float(a_grid[(first + run) // 2])  # middle of the first window of solutions


# ---- prediction ------------------------------------------------------------------------------
@dataclass
class Prediction:
    """Result of :func:`predict`.

    Attributes:
        density: [50, 50, 50] e⁻/Å³ on the fractional grid (posterior mean, or the mean of samples).
        lattice: [3, 3] Å. crystal: decoded atoms (None if decoding failed; see ``notes``).
        files: name -> path of written files.
    """

    density: np.ndarray
    lattice: np.ndarray
    formula: dict
    crystal: Crystal | None = None
    files: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)


def predict(model_dir, pattern: Pattern, formula, cell=None, n_samples: int = 0, out_dir=None,
            threshold: float = 0.02, plots: bool = True, seed: int = 0) -> Prediction:
    """Density, decoded crystal and (with ``out_dir``) files for one pattern.

    Args:
        model_dir: a CrystalNet run directory (config.json + best.pt) or a ``.pt`` file.
        pattern: x-ray powder pattern (2θ with its wavelength, or Q).
        formula: see :func:`parse_formula`; counts per cell (e.g. Sr1Ti1O3) fix the atom count of the
            decoded CIF, fractions let the peak count decide.
        cell: lattice [3, 3], or text for :func:`parse_cell`; None: :func:`index_cubic` (cubic models only).
        n_samples: 0 -> posterior-mean latent; k -> mean of k latent draws.
        out_dir: write ``density.cube``, ``density_slices.png``, ``density_isosurface.png``,
            ``decoded.cif`` and ``prediction.json`` there.
    """
    import torch

    from nanosolve.models.crystalnet.inputs import composition_vector, xrd_vector_from_pattern
    from nanosolve.models.crystalnet.peaks import density_to_crystal
    from nanosolve.models.crystalnet.train import load_model, predict_grids

    comp = parse_formula(formula)
    if len(pattern) == 0:
        raise InputError("pattern is empty", pattern.metadata.get("source"))
    xrd = xrd_vector_from_pattern(pattern)
    model, config = load_model(model_dir)
    notes = []
    if cell is None:
        if config.extra.get("system", "cubic") != "cubic":
            raise InputError(f"this is a {config.extra.get('system')} model: give the cell (--cell a,b,c,alpha,beta,gamma)")
        a = index_cubic(pattern)
        lattice = parse_cell(a)
        notes.append(f"cell indexed from the pattern: cubic a = {a:.4f} Å")
    else:
        lattice = np.asarray(cell, dtype=np.float64) if not isinstance(cell, str) else parse_cell(cell)
        if lattice.shape != (3, 3) or abs(np.linalg.det(lattice)) < 1e-6:
            raise InputError(f"cell must be a non-degenerate [3, 3] lattice, got {lattice.tolist()}")
    torch.manual_seed(seed)
    scale = float(config.extra.get("density_scale", 1.0))
    vec = composition_vector(comp)
    if n_samples:
        rho = predict_grids(model, xrd, vec, n_samples=n_samples)[0].mean(axis=0) * scale
    else:
        rho = predict_grids(model, xrd, vec)[0] * scale
    rho = rho.astype(np.float64)
    crystal = None
    try:
        crystal = density_to_crystal(rho, lattice, comp, threshold=threshold, name="crystalnet")
    except InputError as err:
        notes.append(f"decoding failed: {err}")
    res = Prediction(density=rho, lattice=lattice, formula=comp, crystal=crystal, notes=notes)
    if out_dir is not None:
        write_outputs(res, out_dir, plots=plots, model_dir=model_dir)
    return res


# ---- files -----------------------------------------------------------------------------------
def write_cube(path, rho: np.ndarray, lattice: np.ndarray, crystal: Crystal | None = None) -> Path:
    """Gaussian cube (ase writer) of a fractional-grid density in e⁻/Bohr³ (the cube standard, what
    :func:`density.read_density` expects), with the decoded atoms if given."""
    from ase import Atoms
    from ase.io.cube import write_cube as ase_write_cube
    from ase.units import Bohr

    atoms = crystal.to_ase() if crystal is not None else Atoms(cell=lattice, pbc=True)
    path = Path(path)
    with atomic_write(path) as fh:
        ase_write_cube(fh, atoms, data=np.asarray(rho) * Bohr**3, comment="nanosolve CrystalNet density, e/Bohr^3")
    return path


def plot_slices(path, rho: np.ndarray, title: str = "") -> Path:
    """Three fractional-grid slices through the density maximum (log colour scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    i, j, k = np.unravel_index(np.argmax(rho), rho.shape)
    vmax = float(rho.max())
    norm = LogNorm(vmin=max(vmax * 1e-4, 1e-6), vmax=max(vmax, 1e-5))
    fig, axes = plt.subplots(1, 3, figsize=(12, 4))
    for ax, (img, lab, xl, yl) in zip(axes, [(rho[:, :, k], f"z = {k / rho.shape[2]:.2f}", "y (frac)", "x (frac)"),
                                             (rho[:, j, :], f"y = {j / rho.shape[1]:.2f}", "z (frac)", "x (frac)"),
                                             (rho[i, :, :], f"x = {i / rho.shape[0]:.2f}", "z (frac)", "y (frac)")]):
        im = ax.imshow(np.clip(img, norm.vmin, None), origin="lower", extent=(0, 1, 0, 1), norm=norm, cmap="magma")
        ax.set_title(lab)
        ax.set_xlabel(xl)
        ax.set_ylabel(yl)
    fig.colorbar(im, ax=axes, label="ρ (e⁻/Å³)", shrink=0.8)
    if title:
        fig.suptitle(title)
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
    return path


def plot_isosurface(path, rho: np.ndarray, lattice: np.ndarray, level_fraction: float = 0.1, title: str = "") -> Path:
    """Isosurface at ``level_fraction`` × max (marching cubes) drawn in Cartesian Å, with the cell edges."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from mpl_toolkits.mplot3d.art3d import Poly3DCollection
    from skimage.measure import marching_cubes

    level = level_fraction * float(rho.max())
    # pad by one periodic layer so surfaces crossing the far faces close
    padded = np.pad(rho, ((0, 1), (0, 1), (0, 1)), mode="wrap")
    verts, faces, _, _ = marching_cubes(padded, level)
    cart = (verts / np.asarray(rho.shape)) @ np.asarray(lattice)
    fig = plt.figure(figsize=(6, 6))
    ax = fig.add_subplot(projection="3d")
    ax.add_collection3d(Poly3DCollection(cart[faces], alpha=0.6, facecolor="tab:orange", edgecolor="none"))
    corners = np.array([[a, b, c] for a in (0, 1) for b in (0, 1) for c in (0, 1)], dtype=float)
    for p in range(8):
        for q in range(p + 1, 8):
            if np.sum(np.abs(corners[p] - corners[q])) == 1:
                seg = corners[[p, q]] @ np.asarray(lattice)
                ax.plot(*seg.T, color="k", lw=0.8)
    lim = np.ptp(np.vstack([corners @ lattice]), axis=0).max()
    ax.set_xlim(0, lim)
    ax.set_ylim(0, lim)
    ax.set_zlim(0, lim)
    ax.set_xlabel("x (Å)")
    ax.set_ylabel("y (Å)")
    ax.set_zlabel("z (Å)")
    ax.set_title(title or f"isosurface at {level:.3g} e⁻/Å³ ({level_fraction:.0%} of max)")
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
    return path


def write_outputs(res: Prediction, out_dir, plots: bool = True, model_dir=None) -> dict:
    """Write the files of a :class:`Prediction` into ``out_dir``; returns name -> path."""
    from nanosolve.structures.io import write_cif

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {"cube": write_cube(out / "density.cube", res.density, res.lattice, res.crystal)}
    formula = " ".join(f"{k}{v:g}" for k, v in res.formula.items())
    if plots:
        files["slices"] = plot_slices(out / "density_slices.png", res.density, title=f"CrystalNet density, {formula}")
        files["isosurface"] = plot_isosurface(out / "density_isosurface.png", res.density, res.lattice)
    if res.crystal is not None:
        files["cif"] = write_cif(res.crystal, out / "decoded.cif")
    summary = {"formula": res.formula, "lattice": res.lattice.tolist(), "model": None if model_dir is None else str(model_dir),
               "density_max": float(res.density.max()), "electrons_in_cell":
                   float(res.density.sum() * abs(np.linalg.det(res.lattice)) / res.density.size),
               "decoded": None if res.crystal is None else {"formula": res.crystal.formula, "n_atoms": len(res.crystal),
                                                            "species": list(res.crystal.species),
                                                            "frac_coords": res.crystal.frac_coords.tolist()},
               "notes": res.notes, "files": {k: str(v) for k, v in files.items()}}
    files["json"] = out / "prediction.json"
    atomic_write_text(files["json"], json.dumps(summary, indent=1) + "\n")
    res.files = files
    return files


__all__ = ["predict", "Prediction", "parse_formula", "parse_cell", "index_cubic", "write_cube", "plot_slices",
           "plot_isosurface", "write_outputs"]
