"""nanosolve: atomic structures of crystals and nanomaterials from scattering data.

Layers (imports only point down): structures -> scattering -> datasets -> models -> solve -> cli.
"""

from nanosolve.errors import CheckpointError, ConfigError, FileFormatError, InputError, NanosolveError, ResourceError
from nanosolve.registry import pretrained
from nanosolve.structures import Crystal, Particle

__all__ = ["Crystal", "Particle", "InputError", "NanosolveError", "ResourceError", "FileFormatError", "ConfigError",
           "CheckpointError", "pretrained"]
__version__ = "0.1.0"
