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
    if isinstance(structure, Crystal):
        if kind in ("xrd", "nd"):
            from nanosolve.scattering.bragg import simulate_xrd

            q_range = (qmin if qmin is not None else 0.5, qmax if qmax is not None else 8.0)
            tth_range = (5.0, 90.0)
            if wl is not None and (qmin is not None or qmax is not None):
                from nanosolve.scattering.units import two_theta_from_q

                hi = two_theta_from_q(min(q_range[1], 4 * math.pi / wl), wl)
                tth_range = (float(two_theta_from_q(q_range[0], wl)), float(min(hi, 179.9)))
            return simulate_xrd(structure, wl, kind=kind, fwhm=fwhm, size=size, size_model=size_model,
                                q_range=q_range, two_theta_range=tth_range,
                                step=qstep if wl is None else None, b_iso=biso)
        if kind == "gr":
            from nanosolve.scattering.crystal_pdf import crystal_pdf

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

