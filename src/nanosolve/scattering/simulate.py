"""One entry point for every simulated pattern: ``simulate(kind, structure, ...) -> Pattern``.

Which simulator answers depends on the structure:

=========  =============================================  =========================================
kind       Crystal (periodic)                             Particle (finite)
=========  =============================================  =========================================
xrd, nd    Bragg powder pattern (:mod:`.bragg`)           Debye I(Q) (:mod:`.debye`)
gr         PDF of the crystal (:mod:`.crystal_pdf`),      Debye G(r)
           envelope of ``diameter`` if given
iq sq fq   Debye on a sphere of ``diameter`` Å cut from   Debye
saxs sans  the crystal (default 30 Å)                     Debye at small angles
=========  =============================================  =========================================

With a wavelength, xrd/nd patterns are returned on 2θ (degrees); without one, on Q (Å⁻¹).
"""

from __future__ import annotations

import math

import numpy as np

from nanosolve.errors import InputError
from nanosolve.scattering.pattern import KINDS, Pattern
from nanosolve.scattering.units import wavelength as _wavelength
from nanosolve.structures import Crystal, Particle
from nanosolve.structures.coerce import as_structure

#: Diameter (Å) of the sphere cut from a crystal when a particle-only signal is asked of it.
DEFAULT_CUT_DIAMETER = 30.0


def simulate(kind: str, structure, wavelength: float | str | None = None, *,
             qmin: float | None = None, qmax: float | None = None, qstep: float | None = None,
             rmin: float = 0.0, rmax: float = 30.0, rstep: float = 0.01, qdamp: float = 0.04,
             biso: float = 0.3, fwhm: float | None = None, size: float | None = None,
             size_model: str = "scherrer", diameter: float | None = None) -> Pattern:
    """Simulate one pattern of ``kind`` (xrd nd saxs sans iq sq fq gr) for a crystal or particle.

    Args:
        structure: Crystal, Particle, ase.Atoms, pymatgen Structure/Molecule or a structure file path
            (:func:`nanosolve.structures.coerce.as_structure`).
        wavelength: Å or a name ('CuKa'); for xrd/nd gives a 2θ axis (degrees).
        qmin, qmax, qstep: Q grid in Å⁻¹ (defaults per kind: Bragg 0.5-8, Debye 1-30 (PDF) or
            0-3 (SAXS)).
        rmin, rmax, rstep: r grid of G(r) in Å.
        qdamp: instrumental PDF damping (Å⁻¹); biso: isotropic displacement B (Å²).
        fwhm: Bragg instrumental FWHM in x units (° 2θ or Å⁻¹); size: crystallite size (Å) for
            Bragg broadening with ``size_model`` 'scherrer' or 'pxrdnet'.
        diameter: for a crystal, the spherical envelope of its PDF / the sphere cut for Debye kinds.
    """
    if kind not in KINDS:
        raise InputError(f"unknown pattern kind {kind!r}; expected one of {', '.join(KINDS)}")
    wl = _wavelength(wavelength)
    structure = as_structure(structure)
    _check_arguments(wl, qmin, qmax, qstep, rmin, rmax, rstep, qdamp, biso, fwhm, size, diameter)
    pattern = _simulate(kind, structure, wl, qmin, qmax, qstep, rmin, rmax, rstep, qdamp, biso, fwhm, size,
                        size_model, diameter)
    if not np.any(pattern.y):  # e.g. no reflection reachable at this wavelength: say so, write nothing
        raise InputError(f"the simulated {kind} pattern is zero everywhere (no reflection or pair distance in "
                         f"range{f' at λ = {wl:g} Å' if wl else ''}); widen the range or change the wavelength")
    return pattern


def _check_arguments(wl, qmin, qmax, qstep, rmin, rmax, rstep, qdamp, biso, fwhm, size, diameter) -> None:
    """Range checks of every argument, naming the CLI option, before any work."""
    from nanosolve.scattering.readers.validate import MAX_Q, MAX_R, check_wavelength

    check_wavelength(wl, "--wavelength")

    def need(ok, option, value, rule):
        if value is not None and not (math.isfinite(value) and ok(value)):
            raise InputError(f"must be {rule}, got {value:g}", option)

    need(lambda v: 0 <= v <= MAX_Q, "--qmin", qmin, f"in [0, {MAX_Q:g}] Å⁻¹")
    need(lambda v: 0 < v <= MAX_Q, "--qmax", qmax, f"in (0, {MAX_Q:g}] Å⁻¹")
    need(lambda v: v > 0, "--qstep", qstep, "> 0 Å⁻¹")
    need(lambda v: 0 <= v <= MAX_R, "--rmin", rmin, f"in [0, {MAX_R:g}] Å")
    need(lambda v: 0 < v <= MAX_R, "--rmax", rmax, f"in (0, {MAX_R:g}] Å")
    need(lambda v: v > 0, "--rstep", rstep, "> 0 Å")
    need(lambda v: 0 <= v <= 10, "--qdamp", qdamp, "in [0, 10] Å⁻¹")
    need(lambda v: 0 <= v <= 100, "--biso", biso, "in [0, 100] Å²")
    need(lambda v: 0 < v <= 180, "--fwhm", fwhm, "in (0, 180]")
    need(lambda v: 0 < v <= 1e6, "--size", size, "in (0, 1e6] Å")
    need(lambda v: 0 < v <= 300, "--diameter", diameter, "in (0, 300] Å (a 300 Å sphere is ~10⁶ atoms)")
    if qmin is not None and qmax is not None and not qmax > qmin:
        raise InputError(f"{qmax:g} must exceed --qmin ({qmin:g})", "--qmax")
    if rmin is not None and rmax is not None and not rmax > rmin:
        raise InputError(f"{rmax:g} must exceed --rmin ({rmin:g})", "--rmax")


def _simulate(kind, structure, wl, qmin, qmax, qstep, rmin, rmax, rstep, qdamp, biso, fwhm, size, size_model,
              diameter) -> Pattern:
    if isinstance(structure, Crystal):
        if kind in ("xrd", "nd"):
            from nanosolve.scattering.bragg import simulate_xrd
            from nanosolve.scattering.memory import guard_bragg, guard_grid

            q_range = (qmin if qmin is not None else 0.5, qmax if qmax is not None else 8.0)
            tth_range = (5.0, 90.0)
            if wl is not None and (qmin is not None or qmax is not None):
                from nanosolve.scattering.units import two_theta_from_q

                hi = two_theta_from_q(min(q_range[1], 4 * math.pi / wl), wl)
                tth_range = (float(two_theta_from_q(q_range[0], wl)), float(min(hi, 179.9)))
            if wl is None:
                guard_grid(*q_range, qstep or 0.005, f"--qstep {qstep or 0.005:g} over Q {q_range[0]:g}-{q_range[1]:g} Å⁻¹")
            else:
                guard_grid(*tth_range, 0.02, f"2θ grid {tth_range[0]:g}-{tth_range[1]:g}°")
            q_hi = q_range[1] if wl is None else 4 * math.pi * math.sin(math.radians(tth_range[1] / 2)) / wl
            guard_bragg(structure.lattice, len(structure), q_hi, f"{kind} pattern")
            return simulate_xrd(structure, wl, kind=kind, fwhm=fwhm, size=size, size_model=size_model,
                                q_range=q_range, two_theta_range=tth_range,
                                step=qstep if wl is None else None, b_iso=biso)
        if kind == "gr":
            from nanosolve.scattering.crystal_pdf import crystal_pdf
            from nanosolve.scattering.memory import guard_grid

            guard_grid(rmin, rmax, rstep, f"--rstep {rstep:g} over r {rmin:g}-{rmax:g} Å")
            return crystal_pdf(structure, rmin=rmin, rmax=rmax, rstep=rstep,
                               qmax=qmax if qmax is not None else 30.0, qdamp=qdamp, biso=biso,
                               radiation="xray", diameter=diameter)
        from nanosolve.structures.builders.cut import cut_sphere

        structure = cut_sphere(structure, diameter=diameter or DEFAULT_CUT_DIAMETER)
    if not isinstance(structure, Particle):
        raise InputError(f"cannot simulate a {type(structure).__name__}; give a Crystal or a Particle")
    return _debye(kind, structure, wl, qmin, qmax, qstep, rmin, rmax, rstep, qdamp, biso)


def _debye(kind, particle, wl, qmin, qmax, qstep, rmin, rmax, rstep, qdamp, biso) -> Pattern:
    from nanosolve.scattering.debye import DebyeSimulator

    radiation = "neutron" if kind in ("nd", "sans") else "xray"
    if kind in ("saxs", "sans"):
        sim = DebyeSimulator(saxs_qmin=qmin if qmin is not None else 0.0, saxs_qmax=qmax or 3.0,
                             saxs_qstep=qstep or 0.01, biso=biso, radiation=radiation)
        return sim.saxs(particle)
    if kind in ("xrd", "nd"):
        hi = qmax or (min(8.0, 4 * math.pi / wl) if wl else 8.0)
        sim = DebyeSimulator(qmin=qmin if qmin is not None else 0.5, qmax=hi, qstep=qstep or 0.005,
                             biso=biso, radiation=radiation)
        p = sim.iq(particle)
        p = Pattern(p.x, p.y, kind, "q", wl, radiation, metadata=p.metadata)
        return p.to_two_theta() if wl else p
    sim = DebyeSimulator(qmin=qmin if qmin is not None else 1.0, qmax=qmax or 30.0, qstep=qstep,
                         qdamp=qdamp, rmin=rmin, rmax=rmax, rstep=rstep, biso=biso, radiation=radiation)
    return sim.simulate(particle, (kind,))[kind]

