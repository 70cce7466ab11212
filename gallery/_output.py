"""Kept for examples written before :mod:`geometry_probe.examples` (import from there instead)."""

from geometry_probe.examples import fast, output_folder, save_figure, save_numbers  # noqa: F401
