"""Metrics shared by the notebooks: pass@k and accuracy (more are added by later notebooks)."""

from __future__ import annotations

import numpy as np


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples of which c are correct (Chen et al., "Evaluating Large Language
    Models Trained on Code", 2021): 1 - C(n-c, k) / C(n, k), computed as a stable product."""
    if not 0 <= c <= n:
        raise ValueError(f"need 0 <= c <= n, got c={c}, n={n}")
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n, got k={k}, n={n}")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def pass_at_k_curve(correct: np.ndarray, ks: list[int]) -> dict[int, float]:
    """Mean pass@k over problems; ``correct`` is a [problems, samples] boolean array."""
    correct = np.asarray(correct, dtype=bool)
    n = correct.shape[1]
    counts = correct.sum(1)
    return {k: float(np.mean([pass_at_k(n, int(c), k) for c in counts])) for k in ks if k <= n}
