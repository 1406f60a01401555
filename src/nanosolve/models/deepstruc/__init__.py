"""DeepStruc: PDF -> mono-metallic nanoparticle structure with a conditional VAE.

Submodules (imported on demand, so ``import nanosolve.models.deepstruc`` stays light):

* :mod:`.pdf` - batched PDF simulator for small clusters (Qmin/Qmax/Qdamp/Biso/delta2).
* :mod:`.data` - the paper's FCC cluster set and the extended set, PDFs, GraphStore files, splits.
* :mod:`.representation` - unit-sphere scaling, satellites, node features, padding, batch collate.
* :mod:`.trilaterate` - distances -> coordinates (L-BFGS-B), aligned RMSD.
* :mod:`.config`, :mod:`.model`, :mod:`.train`, :mod:`.evaluate`, :mod:`.sample` - the network.
"""
