"""CrystalNet: powder XRD + composition -> continuous electron density (Guo et al.).

Submodules (imported on demand, so ``import nanosolve.models.crystalnet`` stays light):

* :mod:`.density` - procrystal density on the 50³ fractional grid, CHGCAR/cube reader, .npy cache.
* :mod:`.inputs` - 1,024-bin Mo Kα stick pattern, 118-element composition vector, augmentation,
  measured-pattern conversion, stratified training points.
* :mod:`.metrics` - 3-D SSIM/PSNR and the best score over the 24 cube rotations.
* :mod:`.peaks` - density -> atoms (peaks, sub-voxel refinement, basin charges, species).
* :mod:`.config`, :mod:`.model` - the network and its presets.
"""
