"""Sphinx configuration: Markdown pages (MyST), API from numpydoc docstrings, CLI from ``--help``,
the gallery run by sphinx-gallery. Build (no network needed)::

    python -m sphinx -b html docs docs/_build/html

Add ``-D plot_gallery=0`` to render the gallery without running the examples.
"""

import os
import sys
from pathlib import Path

import matplotlib

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / "_ext"))
matplotlib.use("Agg")

import geometry_probe  # noqa: E402

project = "geometry-probe"
author = "geometry-probe contributors"
copyright = "geometry-probe contributors"
release = version = geometry_probe.__version__

GALLERY_DIR = DOCS.parent / "gallery"
GALLERY_HEADERS = ("README.rst", "README.txt", "GALLERY_HEADER.rst")
HAS_GALLERY = any((GALLERY_DIR / name).is_file() for name in GALLERY_HEADERS)

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "cli_reference",
]
if HAS_GALLERY:
    extensions.append("sphinx_gallery.gen_gallery")

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "**/.ipynb_checkpoints", "auto_examples/*.ipynb", "auto_examples/*.py",
                    "auto_examples/*.zip", "auto_examples/*.md5", "auto_examples/*.json"]
suppress_warnings = ["config.cache"]   # sphinx_gallery_conf holds a regex/callables; never cached

myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3

autosummary_generate = True
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_typehints = "none"            # numpydoc's Parameters sections carry the types
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_validation_checks: set[str] = set()

html_theme = "alabaster"
html_title = f"geometry-probe {version}"
html_theme_options = {"description": "Measure and show the geometry of learned embeddings.",
                      "fixed_sidebar": True, "page_width": "1100px"}

# the examples save their figures and numbers (gallery/_output.py) into the build folder, not the sources
os.environ.setdefault("GEOPROBE_GALLERY_OUT", str(DOCS / "_build" / "gallery_output"))
sphinx_gallery_conf = {
    "examples_dirs": "../gallery",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "ignore_pattern": r"(^|[/\\])(_[^/\\]*|train_digits)\.py$",   # helpers (_*.py), the training script
    "download_all_examples": False,
    "within_subsection_order": "FileNameSortKey",
    "remove_config_comments": True,
}
