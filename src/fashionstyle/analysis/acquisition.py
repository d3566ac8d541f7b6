"""Which unlabelled photos a label would teach the model most: scores, a bounded pool, diversity.

    u = threshold_uncertainty(probs, thresholds)        # (N, L): 1 at a label's tuned threshold, 0 at 0 or 1
    w = rare_label_weights(prevalence, power=0.5)       # (L,): rarer labels weigh more, mean 1
    score = u @ w / len(w)                              # (N,) what `uncertainty` ranks by
    pool = CandidatePool(capacity=800)
    pool.add(ids, paths, score, probs)                  # per chunk: only the best `capacity` are kept
    chosen = weighted_k_center(features, pool.scores, n=200)  # no two near-duplicates

Torch-free. Each strategy `fashionstyle suggest --strategy` offers (core.choices.ACQUISITION_STRATEGIES) is
a Strategy registered below: what it scores a photo by, how many candidates it keeps, how it picks among them.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from fashionstyle.core.choices import ACQUISITION_STRATEGIES


class Strategy:
    """How a strategy chooses. The default: the `n` best-scoring photos of the predicted catalogue."""

    predicts_catalogue = True  # False: scored by id alone, and only the photos chosen are predicted

    def scores(self, ids: Sequence[str], probs: np.ndarray, thresholds: np.ndarray, rare_weights: np.ndarray,
               seed: int) -> np.ndarray:
        """(N,) how much labelling each photo would teach (higher first; -inf: never chosen)."""
        raise NotImplementedError

    def pool_size(self, n: int, pool_factor: int) -> int:
        """How many of the best-scoring photos to keep for `picks`."""
        return n

    def picks(self, n: int, scores: np.ndarray, features: Callable[[], np.ndarray]) -> list[int]:
        """`n` rows of the pool (sorted by score), in the order they are offered; `features()` gives (M, D)."""
        return list(range(min(n, len(scores))))


def strategy(name: str) -> Strategy:
    """The registered strategy called `name` (one line naming the valid ones otherwise)."""
    return ACQUISITION_STRATEGIES.implementation(name)()


@ACQUISITION_STRATEGIES.implements("uncertainty")
class Uncertainty(Strategy):
    def scores(self, ids: Sequence[str], probs: np.ndarray, thresholds: np.ndarray, rare_weights: np.ndarray,
               seed: int) -> np.ndarray:
        return uncertainty_scores(probs, thresholds, rare_weights)

    def pool_size(self, n: int, pool_factor: int) -> int:
        return n * pool_factor

    def picks(self, n: int, scores: np.ndarray, features: Callable[[], np.ndarray]) -> list[int]:
        return weighted_k_center(features(), scores, n) if len(scores) > 1 else super().picks(n, scores, features)


@ACQUISITION_STRATEGIES.implements("margin")
class Margin(Strategy):
    def scores(self, ids: Sequence[str], probs: np.ndarray, thresholds: np.ndarray, rare_weights: np.ndarray,
               seed: int) -> np.ndarray:
        return uncertainty_scores(probs, thresholds)


@ACQUISITION_STRATEGIES.implements("random")
class Random(Strategy):
    predicts_catalogue = False

    def scores(self, ids: Sequence[str], probs: np.ndarray, thresholds: np.ndarray, rare_weights: np.ndarray,
               seed: int) -> np.ndarray:
        return random_scores(ids, seed)


def threshold_uncertainty(probs: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """(N, L) in [0, 1]: 1 where a probability sits on its label's threshold, falling linearly to 0 at
    0 (below the threshold) or 1 (above): the distance is measured on the side the threshold leaves."""
    t = np.clip(np.asarray(thresholds, np.float64), 1e-6, 1 - 1e-6)  # (L,)
    p = np.nan_to_num(np.asarray(probs, np.float64), nan=0.0)       # (N, L)
    below = p < t
    distance = np.where(below, (t - p) / t, (p - t) / (1 - t))
    return np.clip(1.0 - distance, 0.0, 1.0)


def rare_label_weights(prevalence: np.ndarray, power: float = 0.5) -> np.ndarray:
    """(L,) weights ∝ (1 / prevalence) ** power, scaled to mean 1; a label never seen counts as one in 1,000."""
    rate = np.clip(np.asarray(prevalence, np.float64), 1e-3, 1.0)
    weights = rate ** -power
    return weights / weights.mean()


def uncertainty_scores(probs: np.ndarray, thresholds: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """(N,) the weighted mean of the per-label uncertainties (NaN rows, unreadable images: -inf)."""
    u = threshold_uncertainty(probs, thresholds)
    w = np.ones(u.shape[1]) if weights is None else np.asarray(weights, np.float64)
    scores = u @ w / w.sum()
    scores[np.isnan(np.asarray(probs, np.float64)).any(axis=1)] = -np.inf
    return scores


def random_scores(ids: Sequence[str], seed: int) -> np.ndarray:
    """(N,) a uniform key per id, the same for an id whatever the chunking and order (seeded)."""
    keys = [hashlib.blake2b(f"{seed}:{i}".encode("utf-8", "surrogateescape"), digest_size=8).digest()
            for i in ids]
    return np.array([int.from_bytes(k, "little") / 2 ** 64 for k in keys], np.float64)


@dataclass
class CandidatePool:
    """The `capacity` best-scoring images seen so far (ties: the earlier one), with their probabilities."""

    capacity: int
    ids: list[str] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    scores: np.ndarray = field(default_factory=lambda: np.zeros(0))
    probs: np.ndarray | None = None
    seen: int = 0

    def add(self, ids: Sequence[str], paths: Sequence[str], scores: np.ndarray, probs: np.ndarray) -> None:
        keep = np.isfinite(scores)
        self.seen += len(ids)
        ids = [i for i, k in zip(ids, keep) if k]
        paths = [str(p) for p, k in zip(paths, keep) if k]
        all_scores = np.concatenate([self.scores, np.asarray(scores, np.float64)[keep]])
        all_probs = np.asarray(probs, np.float32)[keep] if self.probs is None \
            else np.concatenate([self.probs, np.asarray(probs, np.float32)[keep]])
        order = np.argsort(-all_scores, kind="stable")[:self.capacity]  # earlier rows first among ties
        merged_ids, merged_paths = self.ids + ids, self.paths + paths
        self.ids = [merged_ids[i] for i in order]
        self.paths = [merged_paths[i] for i in order]
        self.scores, self.probs = all_scores[order], all_probs[order]

    def __len__(self) -> int:
        return len(self.ids)


def weighted_k_center(features: np.ndarray, scores: np.ndarray, n: int) -> list[int]:
    """`n` rows chosen greedily: first the best score, then each time the row whose score times its
    distance to the nearest chosen row is largest, so a near-duplicate of a chosen photo (distance ~0)
    waits until the distinct ones are taken. Features are L2-normalised first; returned in pick order."""
    x = np.asarray(features, np.float64)  # (M, D)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    s = np.asarray(scores, np.float64)
    s = s - s.min() + 1e-3 if len(s) else s  # positive, so that distance always counts
    n = min(n, len(x))
    if n == 0:
        return []
    chosen = [int(np.argmax(s))]
    nearest = np.linalg.norm(x - x[chosen[0]], axis=1)  # (M,) distance to the nearest chosen row
    for _ in range(n - 1):
        gain = s * nearest
        gain[chosen] = -np.inf
        pick = int(np.argmax(gain))
        chosen.append(pick)
        nearest = np.minimum(nearest, np.linalg.norm(x - x[pick], axis=1))
    return chosen
