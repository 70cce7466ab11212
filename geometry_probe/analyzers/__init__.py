"""Registry of analyzers: an explicit dict from name (CLI value, JSON family) to class."""

from __future__ import annotations

from typing import Any

from geometry_probe.analyzers.base import Analyzer, PairwiseAnalyzer
from geometry_probe.analyzers.contrastive import Contrastive
from geometry_probe.analyzers.fmicl import FMICL
from geometry_probe.analyzers.knn import Knn
from geometry_probe.analyzers.neural_collapse import NeuralCollapse
from geometry_probe.analyzers.orthogonality import Orthogonality
from geometry_probe.analyzers.spectrum import Spectrum
from geometry_probe.exceptions import UnknownAnalyzerError

ANALYZERS: dict[str, type[Analyzer] | type[PairwiseAnalyzer]] = {
    cls.name: cls for cls in (Spectrum, NeuralCollapse, Orthogonality, Contrastive, FMICL, Knn)
}


def get_analyzer(spec: str | Analyzer | PairwiseAnalyzer, **params: Any) -> Analyzer | PairwiseAnalyzer:
    """Return an analyzer instance from a registry name (or pass an instance through)."""
    if isinstance(spec, (Analyzer, PairwiseAnalyzer)):
        return spec
    try:
        cls = ANALYZERS[spec]
    except KeyError:
        raise UnknownAnalyzerError(
            f"unknown analyzer {spec!r}; choose from {sorted(ANALYZERS)} (see `geoprobe list`)."
        ) from None
    return cls(**params)


def describe(name: str) -> str:
    """First line of an analyzer's docstring (for ``geoprobe list``)."""
    doc = ANALYZERS[name].__doc__ or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


__all__ = ["ANALYZERS", "Analyzer", "PairwiseAnalyzer", "describe", "get_analyzer"]
