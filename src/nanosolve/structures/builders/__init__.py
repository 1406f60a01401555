"""Structure builders: CHILI oxide types, AFLOW prototypes, metal clusters, nanoparticle cutting."""

from nanosolve.structures.builders.chili_types import CHILI_CRYSTAL_TYPES, build_chili_crystal
from nanosolve.structures.builders.clusters import (
    CLUSTER_SHAPES,
    bcc_cluster,
    build_cluster,
    decahedron,
    fcc_cluster,
    hcp_cluster,
    icosahedron,
    octahedron,
    sc_cluster,
)
from nanosolve.structures.builders.cut import cut_nanoparticle, cut_sphere
from nanosolve.structures.builders.prototypes import (
    PrototypeInfo,
    build_prototype,
    isotypic_substitutions,
    list_prototypes,
)

__all__ = [
    "CHILI_CRYSTAL_TYPES", "build_chili_crystal", "CLUSTER_SHAPES", "build_cluster", "fcc_cluster", "bcc_cluster",
    "sc_cluster", "hcp_cluster", "icosahedron", "decahedron", "octahedron", "cut_nanoparticle", "cut_sphere",
    "PrototypeInfo", "build_prototype", "isotypic_substitutions", "list_prototypes",
]
