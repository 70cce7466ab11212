"""`knn` analyzer: exact neighbours in one tiled pass → kNN accuracy, hubness, TwoNN dimension."""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
import torch

from geometry_probe.analyzers.base import PairwiseAnalyzer
from geometry_probe.embeddings import Embeddings
from geometry_probe.exceptions import InvalidInputError
from geometry_probe.functional import knn as F
from geometry_probe.result import Result


class Knn(PairwiseAnalyzer):
    """kNN quality and hubness: weighted kNN accuracy (DINO), k-occurrence skewness, TwoNN.

    Parameters
    ----------
    k : int, default=20
        Neighbours for accuracy and hubness (capped at N − 1).
    temperature : float, default=0.07
        Temperature of the exp(similarity / T) vote.

    Notes
    -----
    Similarity is the cosine of the rows (L2-normalised inside the tiles); self-matches are
    excluded by position. Accuracy is leave-one-out on the given rows and needs labels (NaN
    with a note otherwise).
    """

    name: ClassVar[str] = "knn"
    uses_labels: ClassVar[bool] = True
    invariances: ClassVar[frozenset[str]] = frozenset({"rotation", "scale"})

    def __init__(self, *, k: int = 20, temperature: float = 0.07, n_classes: int | None = None) -> None:
        super().__init__()
        if k < 1 or temperature <= 0:
            raise InvalidInputError(f"knn: k must be >= 1 and temperature > 0, got k={k}, temperature={temperature}.")
        self.k, self.temperature, self.n_classes = k, temperature, n_classes

    def run(self, emb: Embeddings, *, device: torch.device, batch_size: int) -> Result:
        """Neighbours of every row, then the metrics."""
        N = emb.n_samples
        k = min(self.k, N - 1)
        X = emb.rows(np.arange(N), device=device)
        sims, index = F.knn_search(X, max(k, 2) if N > 2 else 1)
        notes = []
        scalars = {"hubness_skew": F.hubness_skewness(index[:, :k], N),
                   "k_occurrence_max": float(F.k_occurrence(index[:, :k], N).max()),
                   "twonn_id": F.twonn_dimension(sims) if sims.shape[1] >= 2 else math.nan}
        if math.isnan(scalars["hubness_skew"]):
            notes.append("hubness_skew is NaN: every row occurs equally often in the neighbour lists (σ = 0).")
        if emb.labels is not None:
            labels = torch.as_tensor(emb.labels, device=sims.device)
            scalars["accuracy"] = F.weighted_knn_accuracy(sims[:, :k], index[:, :k], labels,
                                                          int(emb.labels.max()) + 1, temperature=self.temperature)
        else:
            scalars["accuracy"] = math.nan
            notes.append("accuracy needs labels (--labels); hubness and TwoNN do not.")
        hist = np.bincount(F.k_occurrence(index[:, :k], N).astype(np.int64))
        return Result(self.name, scalars, arrays={"knn_k_occurrence_hist": hist.astype(float)}, notes=tuple(notes),
                      params={"k": k, "temperature": self.temperature, "similarity": "cosine",
                              "self_match": "excluded by position", "skewness": "population (biased)",
                              "twonn": "MLE on chord distances of L2-normalised rows"})
