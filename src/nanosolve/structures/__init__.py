"""Crystal and particle types, files, builders and graphs."""

from nanosolve.structures.coerce import as_structure  # noqa: E402  (needs Crystal and Particle)
from nanosolve.structures.crystal import CRYSTAL_SYSTEMS, Crystal, SymmetryInfo, lattice_from_parameters
from nanosolve.structures.particle import Particle

__all__ = ["Crystal", "Particle", "SymmetryInfo", "CRYSTAL_SYSTEMS", "lattice_from_parameters", "as_structure"]
