"""`knn` analyzer: exact neighbours in one tiled pass → kNN accuracy, hubness, TwoNN dimension."""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
import torch

from geometry_probe import distributed
from geometry_probe.analyzers.base import PairwiseAnalyzer
from geometry_probe.embeddings import Embeddings
from geometry_probe.exceptions import InvalidInputError
from geometry_probe.functional import knn as F
from geometry_probe.pairwise import tile_size, unit_rows
from geometry_probe.result import Result

PAIR_BUDGET = 5 * 10**8           # all rows up to N ≈ 31,600; above, the neighbours of sampled query rows
MIN_QUERIES = 1000
QUERY_BLOCK_BYTES = 16 * 2**20    # sampled estimate: candidates per block so that the (queries, block) cosines fit


class Knn(PairwiseAnalyzer):
    """kNN quality and hubness: weighted kNN accuracy (DINO), k-occurrence skewness, TwoNN.

    Parameters
    ----------
    k : int, default=20
        Neighbours for accuracy and hubness (capped at N − 1).
    temperature : float, default=0.07
        Temperature of the exp(similarity / T) vote.

    exact : bool, optional
        Neighbour lists of all rows (True) or of sampled query rows (False); default: all rows
        up to ``pair_budget`` pairs.
    pair_budget : int, default=5e8
    seed : int, default=0

    Notes
    -----
    Similarity is the cosine of the rows (L2-normalised inside the tiles); self-matches are
    excluded by position. Accuracy is leave-one-out on the given rows and needs labels (NaN
    with a note otherwise).
    """

    name: ClassVar[str] = "knn"
    uses_labels: ClassVar[bool] = True
    invariances: ClassVar[frozenset[str]] = frozenset({"rotation", "scale"})

    def __init__(self, *, k: int = 20, temperature: float = 0.07, n_classes: int | None = None,
                 exact: bool | None = None, pair_budget: int = PAIR_BUDGET, seed: int = 0) -> None:
        super().__init__()
        if k < 1 or temperature <= 0:
            raise InvalidInputError(f"knn: k must be >= 1 and temperature > 0, got k={k}, temperature={temperature}.")
        self.k, self.temperature, self.n_classes = k, temperature, n_classes
        self.exact, self.pair_budget, self.seed = exact, pair_budget, seed

    def _k(self, n_samples: int) -> int:
        """Neighbours searched: k capped at N − 1, at least 2 for TwoNN when N > 2."""
        return max(min(self.k, n_samples - 1), 2) if n_samples > 2 else 1

    def _exact(self, n_samples: int) -> bool:
        return self.exact if self.exact is not None else n_samples * (n_samples - 1) / 2 <= self.pair_budget

    def start(self, emb: Embeddings, *, device: torch.device) -> F.NeighbourLists | None:
        """Running neighbour lists of every row for the shared pass, or ``None`` above the budget
        (under ``torch.distributed``: lists of no rows that carry ``k``; the ring pass keeps each rank's own)."""
        if not self._exact(emb.n_samples):
            return None
        rows = 0 if distributed.context() is not None else emb.n_samples    # ranks keep their own rows' lists
        return F.NeighbourLists(rows, self._k(emb.n_samples), n_candidates=emb.n_samples, device=device)

    def finish(self, emb: Embeddings, X: torch.Tensor | None,
               consumer: F.NeighbourLists | distributed.RankLists | None, *,
               device: torch.device, dtype: torch.dtype) -> Result:
        """Metrics from the neighbour lists (all rows, or a seeded sample of query rows).

        Under ``torch.distributed`` the exact pass leaves each rank the lists of its own rows
        (:class:`~geometry_probe.distributed.RankLists`): each rank computes the per-row terms of
        its rows (k-occurrence counts, correct votes, TwoNN's kept rows and log ratios) and one
        ``all_reduce`` sums them, so no rank reads or receives the lists of all N rows.
        """
        N = emb.n_samples
        k = min(self.k, N - 1)
        notes: list[str] = []
        sharded = isinstance(consumer, distributed.RankLists)
        if consumer is not None:
            sims, index, rows = consumer.similarities, consumer.indices, None
            queries: slice | np.ndarray = slice(consumer.start, consumer.start + len(index)) if sharded else slice(N)
            n_queries = N
            estimator = "exact, all rows"
        else:
            sims, index, rows = self._sampled(emb, device, dtype)
            queries, n_queries = rows, len(rows)
            estimator = f"exact neighbours of {len(rows)} sampled query rows"
            notes.append(f"N={N} exceeds the pair budget {self.pair_budget:.3g}: accuracy and TwoNN use the exact "
                         f"neighbours (among all {N} rows) of {len(rows)} seeded random query rows (stderr given); "
                         "hubness counts occurrences in those queries' lists only; pass exact=True (--exact) "
                         "for all rows.")
        occurrence = F.k_occurrence(index[:, :k], N)
        kept, log_ratios = F.twonn_sums(sims) if sims.shape[1] >= 2 else (0.0, 0.0)
        correct = None
        if emb.labels is not None:
            labels = torch.as_tensor(emb.labels, device=sims.device)
            query_labels = labels[queries] if isinstance(queries, slice) else labels[torch.as_tensor(queries,
                                                                                                    device=sims.device)]
            correct = F.weighted_knn_correct(sims[:, :k], index[:, :k], labels, query_labels,
                                             int(emb.labels.max()) + 1, temperature=self.temperature)
        n_correct = float(correct.sum()) if correct is not None else 0.0
        if sharded:                                     # this rank's rows: sum the per-row terms over the ranks
            totals = distributed.sum_over_ranks(torch.from_numpy(np.append(occurrence, [n_correct, kept, log_ratios])))
            occurrence, (n_correct, kept, log_ratios) = totals[:N].numpy(), totals[N:].tolist()
        scalars = {"hubness_skew": F.occurrence_skewness(occurrence),
                   "k_occurrence_max": float(occurrence.max()),
                   "twonn_id": kept / log_ratios if sims.shape[1] >= 2 and log_ratios > 0 else math.nan}
        if math.isnan(scalars["hubness_skew"]):
            notes.append("hubness_skew is NaN: every row occurs equally often in the neighbour lists (σ = 0).")
        if correct is not None:
            scalars["accuracy"] = n_correct / n_queries
            if rows is not None:
                scalars["accuracy_stderr"] = float(correct.std() / math.sqrt(len(rows)))
        else:
            scalars["accuracy"] = math.nan
            notes.append("accuracy needs labels (--labels); hubness and TwoNN do not.")
        hist = np.bincount(occurrence.astype(np.int64))
        return Result(self.name, scalars, arrays={"knn_k_occurrence_hist": hist.astype(float)}, notes=tuple(notes),
                      params={"k": k, "temperature": self.temperature, "similarity": "cosine",
                              "estimator": estimator, "pairwise_precision": str(dtype).removeprefix("torch."),
                              "self_match": "excluded by position", "skewness": "population (biased)",
                              "twonn": "MLE on chord distances of L2-normalised rows"})

    def _sampled(self, emb: Embeddings, device: torch.device,
                 dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
        """Exact neighbours of ``pair_budget / N`` seeded query rows, streaming the candidates."""
        N = emb.n_samples
        m = int(min(N, max(MIN_QUERIES, self.pair_budget // N)))
        rows = np.sort(np.random.default_rng(self.seed).choice(N, size=m, replace=False))
        queries = torch.as_tensor(rows, device=device)
        lists = F.NeighbourLists(m, self._k(N), n_candidates=N, device=device)
        Q = unit_rows(emb.rows(rows, device=device)).to(dtype)
        block = max(tile_size(N, device=device), QUERY_BLOCK_BYTES // (4 * m))     # (m, block) float32 cosines
        for X, _, offset in distributed.block_batches(emb, block, device=device):   # this rank's blocks
            cols = slice(offset, offset + X.shape[0])
            lists.add_query_block(queries, cols, (Q @ unit_rows(X, offset=offset).to(dtype).T).to(torch.float32))
        distributed.merge_top_k(lists)                  # top-k reduction over torch.distributed ranks
        return lists.similarities, lists.indices, rows
