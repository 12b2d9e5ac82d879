"""Flax Linen modules. Every module takes `train` and an optional BatchNorm `norm_mask`."""

from ssadjax.models.mlp import MLPAutoencoder, MLPDecoder, MLPEncoder

__all__ = ["MLPEncoder", "MLPDecoder", "MLPAutoencoder"]
