"""The adaptation distribution: one categorical distribution per gene over the archive's best members.

NAT adapts the super-network on sub-networks drawn from where the search is heading, not from the whole
space. Each gene is drawn independently from its value frequencies among the top archive members; the
combinations are new, so vectors are repaired (a drawn skip may precede a drawn active block).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from factory.space.config import SubnetConfig
from factory.space.encoding import Encoding


class GeneDistribution:
    """Independent categorical distributions over each gene's values `lower..upper`.

    Args:
        encoding: the gene encoding (bounds and repair).
        probs: one probability vector per gene, of length upper - lower + 1.
    """

    def __init__(self, encoding: Encoding, probs: list[np.ndarray]) -> None:
        if len(probs) != encoding.n_genes:
            raise ValueError(f"need {encoding.n_genes} gene distributions, got {len(probs)}")
        for g, p in enumerate(probs):
            size = int(encoding.upper[g] - encoding.lower[g] + 1)
            if len(p) != size or not np.isclose(np.sum(p), 1.0) or np.any(np.asarray(p) < 0):
                raise ValueError(f"gene {g}: expected {size} probabilities summing to 1, got {p}")
        self.encoding = encoding
        self.probs = [np.asarray(p, dtype=np.float64) for p in probs]

    @classmethod
    def fit(cls, encoding: Encoding, X: np.ndarray) -> GeneDistribution:
        """Value frequencies of every gene over the rows of X (the top archive members' genes)."""
        X = np.asarray(X, dtype=np.int64).reshape(-1, encoding.n_genes)
        if len(X) == 0:
            raise ValueError("cannot fit a gene distribution on no rows")
        encoding.validate(X)
        probs = []
        for g in range(encoding.n_genes):
            lo, hi = int(encoding.lower[g]), int(encoding.upper[g])
            counts = np.bincount(X[:, g] - lo, minlength=hi - lo + 1).astype(np.float64)
            probs.append(counts / counts.sum())
        return cls(encoding, probs)

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """n repaired gene vectors, (n, n_genes) int64."""
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
        cols = [
            lo + rng.choice(len(p), size=n, p=p) for lo, p in zip(self.encoding.lower.tolist(), self.probs, strict=True)
        ]
        X = np.stack(cols, axis=1).astype(np.int64) if n else np.zeros((0, self.encoding.n_genes), np.int64)
        return self.encoding.repair(X)

    def sample_configs(self, n: int, rng: np.random.Generator) -> list[SubnetConfig]:
        return self.encoding.decode_all(self.sample(n, rng))

    def to_dict(self) -> dict[str, Any]:
        """Per gene label, the probability of each value (values with probability 0 left out)."""
        out = {}
        for label, lo, p in zip(self.encoding.gene_labels, self.encoding.lower.tolist(), self.probs, strict=True):
            out[label] = {str(lo + i): round(float(q), 4) for i, q in enumerate(p) if q > 0}
        return out


def width_epochs(total: int, widths: Sequence[float]) -> dict[float, int]:
    """Split `total` adaptation epochs over the super-networks in proportion to how often each width occurs in
    `widths` (the top archive members'), largest remainders first: a width the search has left gets none, and
    the adaptation costs `total` epochs whatever the number of widths."""
    if not widths:
        return {}
    counts = {w: widths.count(w) for w in sorted(set(widths))}
    exact = {w: total * c / len(widths) for w, c in counts.items()}
    out = {w: int(v) for w, v in exact.items()}
    by_remainder = sorted(counts, key=lambda w: (out[w] - exact[w], -w))
    for w in by_remainder[: total - sum(out.values())]:
        out[w] += 1
    return out
