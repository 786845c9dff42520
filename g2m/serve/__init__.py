"""Serving a trained student: the deployable artifact, export, prediction and fast inference.

Everything here needs torch alone (the GPU kernels also Triton): no Lightning, PyG or Hydra.
"""
