"""The six scattering signals of a CHILI record (Friis-Jensen et al. 2024, Table 6) from one pair pass.

Per particle: x-ray and neutron small-angle I(Q) (``saxs``, ``sans``), wide-angle I(Q)
(``xrd``, ``nd``) and PDFs G(r) (``xpdf``, ``npdf``), all with Biso = 0.3 Å², in the
conventions of :mod:`nanosolve.scattering.debye` (I = 2·I_DebyeCalculator, G = 2·G_DC). The
PDFs are DebyeCalculator's defaults with rmax = 60 Å: F(Q) on Q = arange(1, 30, π/(60 + 0.01)),
qdamp 0.04, no Lorch window.

All six come from a single :class:`~nanosolve.scattering.debye.PairHistogram`: the O(N²) spread
of the pair distances happens once, the pair sums are computed once per Q grid (three grids,
shared by both radiations, the SAXS one on 16× coarser bins) and both PDFs are one matrix
product with a cached sin(Qr) table.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from nanosolve.scattering.debye import PairHistogram, fq_to_gr

BISO = 0.3  # Å²
QDAMP = 0.04  # Å⁻¹
#: [300] Q (Å⁻¹) of saxs/sans: 0, 0.01, ..., 2.99
Q_SAXS = np.round(np.arange(300) * 0.01, 10)
#: [580] Q (Å⁻¹) of xrd/nd: 1.00, 1.05, ..., 29.95
Q_XRD = np.round(1.0 + np.arange(580) * 0.05, 10)
#: [6000] r (Å) of xpdf/npdf: 0, 0.01, ..., 59.99
R_PDF = np.round(np.arange(6000) * 0.01, 10)
PDF_QMIN, PDF_QMAX, PDF_RMAX, PDF_RSTEP = 1.0, 30.0, 60.0, 0.01
PDF_QSTEP = math.pi / (PDF_RMAX + PDF_RSTEP)
#: [554] Q (Å⁻¹) of the F(Q) -> G(r) transform, as ``DebyeSimulator(qmin=1, qmax=30, rmax=60).q``
Q_PDF = torch.arange(PDF_QMIN, PDF_QMAX, PDF_QSTEP, dtype=torch.float64).numpy()

SIGNALS = ("saxs", "sans", "xrd", "nd", "xpdf", "npdf")
#: signal name -> (x grid, x unit, radiation)
SIGNAL_GRIDS = {"saxs": (Q_SAXS, "q", "xray"), "sans": (Q_SAXS, "q", "neutron"), "xrd": (Q_XRD, "q", "xray"),
                "nd": (Q_XRD, "q", "neutron"), "xpdf": (R_PDF, "r", "xray"), "npdf": (R_PDF, "r", "neutron")}


def signal_parameters() -> dict:
    """JSON-serialisable description of the grids and parameters (for dataset attributes)."""
    return {"biso": BISO, "qdamp": QDAMP, "saxs_q": [0.0, 2.99, 0.01, Q_SAXS.size],
            "xrd_q": [1.0, 29.95, 0.05, Q_XRD.size], "pdf_r": [0.0, 59.99, PDF_RSTEP, R_PDF.size],
            "pdf_q": [PDF_QMIN, PDF_QMAX, PDF_QSTEP, Q_PDF.size],
            "lorch": False, "convention": "nanosolve.debye: I = 2 I_DebyeCalculator, G = 2 G_DebyeCalculator"}


def chili_signals(particle, histogram: PairHistogram | None = None) -> dict[str, np.ndarray]:
    """The six CHILI signals of ``particle`` (a Particle): name -> float32 array on its grid.

    ``saxs``/``sans`` [300] on :data:`Q_SAXS`, ``xrd``/``nd`` [580] on :data:`Q_XRD` (I(Q),
    electrons² / fm² per particle), ``xpdf``/``npdf`` [6000] on :data:`R_PDF` (G(r), Å⁻²).
    Pass ``histogram`` to reuse a :class:`PairHistogram` already built for Q up to 30 Å⁻¹.
    """
    hist = histogram if histogram is not None else PairHistogram.from_particle(particle, qmax=PDF_QMAX)
    out: dict[str, np.ndarray] = {}
    fq = []
    for radiation, small, wide in (("xray", "saxs", "xrd"), ("neutron", "sans", "nd")):
        out[small] = hist.saxs(Q_SAXS, radiation, BISO)
        out[wide] = hist.iq(Q_XRD, radiation, BISO)
        fq.append(hist.fq(Q_PDF, radiation, BISO))
    gr = fq_to_gr(Q_PDF, np.stack(fq), R_PDF, PDF_QSTEP, QDAMP)
    out["xpdf"], out["npdf"] = gr[0], gr[1]
    return {name: np.ascontiguousarray(out[name], dtype=np.float32) for name in SIGNALS}
