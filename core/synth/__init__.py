"""Synthetic iQIYI-VID-like data in the real file formats (the built-in demo dataset).

:mod:`core.synth.generator` holds the presets, :func:`generate` and the files;
:mod:`core.synth.model` the planted structure (people, plan of videos, frames).
"""

from core.synth.generator import (DIM, KINDS, PRESETS, README_HEAD, SPLITS, Preset, generate,
                                  is_demo_dir, make_preset)

__all__ = ["DIM", "KINDS", "PRESETS", "README_HEAD", "SPLITS", "Preset", "generate", "is_demo_dir",
           "make_preset"]
