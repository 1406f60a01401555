"""PXRDNet (Guo et al.): CDVAE + a regressor from the latent code to the nano-broadened powder
pattern; structures are solved by optimising latent codes against a pattern and a formula.

Modules: ``config`` (PXRDNetConfig, presets), ``model`` (PXRDNet, PatternRegressor), ``data``
(crystals + simulated patterns), ``train`` (resumable training, load_model), ``sample`` (latent
optimisation, teacher-forced decoding, baselines). The solve pipeline is :mod:`nanosolve.solve.pxrd`.
"""
