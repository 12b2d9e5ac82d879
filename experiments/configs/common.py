"""The experiment defaults: every field and its default live in the library
(ssadjax/config.py), which the detectors share; experiment configs build on them."""

from ssadjax.config import get_config

__all__ = ["get_config"]
