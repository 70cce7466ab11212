"""geometry-probe: measure and show the geometry of learned embeddings.

>>> import geometry_probe as gp
>>> res = gp.analyze(gp.datasets.make_isotropic(200, 8), "spectrum")
>>> sorted(res)
['spectrum']
"""

__version__ = "0.1.0"

from geometry_probe import datasets, io
from geometry_probe.analysis import analyze
from geometry_probe.analyzers import ANALYZERS, Analyzer, PairwiseAnalyzer, get_analyzer
from geometry_probe.diagnosis import diagnose, has_failed_collapse
from geometry_probe.embeddings import Embeddings
from geometry_probe.monitor import CollapseError, CollapseMonitor, CollapseWarning
from geometry_probe.trajectory import track
from geometry_probe.extraction import extract
from geometry_probe.layer_sweep import layer_sweep
from geometry_probe.exceptions import (
    AmbiguousKeyError,
    EmptyAnalyzerError,
    GeometryProbeError,
    InputFileError,
    InvalidEmbeddingsError,
    InvalidInputError,
    InvalidLabelsError,
    MissingDependencyError,
    MissingLabelsError,
    OutputError,
    UnknownAnalyzerError,
    UnsafeFileError,
)
from geometry_probe._atomic import check_output_path
from geometry_probe.io import load
from geometry_probe.projection import Projection, project
from geometry_probe.result import Result, Results
from geometry_probe.stats import ClassMoments, ClassScatter, Moments

__all__ = [
    "__version__", "AmbiguousKeyError", "analyze", "Analyzer", "ANALYZERS", "check_output_path", "ClassMoments",
    "ClassScatter", "CollapseError", "CollapseMonitor", "CollapseWarning", "datasets", "diagnose", "Embeddings",
    "EmptyAnalyzerError", "extract", "GeometryProbeError", "get_analyzer", "has_failed_collapse", "InputFileError",
    "InvalidEmbeddingsError", "InvalidInputError", "InvalidLabelsError", "io", "layer_sweep", "load",
    "MissingDependencyError", "MissingLabelsError", "Moments", "OutputError", "PairwiseAnalyzer", "project",
    "Projection", "Result", "Results", "track", "UnknownAnalyzerError", "UnsafeFileError"
]
