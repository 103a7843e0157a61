"""Importance weights and resampling for Sequential Monte Carlo: pure functions on 1-D float64 arrays.

Every resampling scheme here returns *ancestor indices* in ascending order (scheme ``s`` draws sorted
uniforms and inverts the cumulative weights), so ``indices[j]`` is the particle that slot ``j`` copies.
All schemes are unbiased: the expected number of copies of particle ``i`` is ``n * w_i``. They differ in
variance (Douc, Cappé & Moulines 2005): multinomial > stratified >= systematic in practice; residual
copies ``floor(n * w_i)`` deterministically and draws only the remainder at random.
"""

from __future__ import annotations

import numpy as np

from prmlab.choices import check_choice

RESAMPLING_SCHEMES = ("multinomial", "systematic", "stratified", "residual")


def logsumexp(logw: np.ndarray) -> float:
    """log(sum(exp(logw))) computed stably; -inf when every entry is -inf."""
    logw = np.asarray(logw, dtype=np.float64)
    m = np.max(logw) if logw.size else -np.inf
    if not np.isfinite(m):
        return float(m)  # all -inf (or a +inf entry, which callers reject earlier)
    return float(m + np.log(np.sum(np.exp(logw - m))))


def normalize_log_weights(logw: np.ndarray) -> tuple[np.ndarray, float]:
    """Normalize log-weights: returns ``(w, log_sum)`` with ``w = exp(logw - log_sum)`` summing to 1
    and ``log_sum = log(sum(exp(logw)))`` (subtract ``log(n)`` for the log of the mean weight).

    Works in log space, so entries like -1e4 are fine; -inf entries get weight 0. Raises ValueError
    when every entry is -inf (no particle has positive weight) or when an entry is NaN or +inf.
    The ESS of log-weights is ``prmlab.metrics.ess(normalize_log_weights(logw)[0])``.
    """
    logw = _as_1d(logw, "logw")
    if np.isnan(logw).any() or np.isposinf(logw).any():
        raise ValueError("log-weights must not contain NaN or +inf")
    log_sum = logsumexp(logw)
    if log_sum == -np.inf:
        raise ValueError("all log-weights are -inf: no particle has positive weight")
    return np.exp(logw - log_sum), log_sum


def resample(weights: np.ndarray, n: int, scheme: str, rng: np.random.Generator) -> np.ndarray:
    """Draw ``n`` ancestor indices (int64, ascending) from ``weights`` (non-negative, any positive sum)
    with ``scheme`` in RESAMPLING_SCHEMES. A particle with weight 0 is never drawn."""
    check_choice(scheme, RESAMPLING_SCHEMES, "resampling scheme")
    w = _as_1d(weights, "weights")
    if (w < 0).any() or not np.isfinite(w).all():
        raise ValueError("weights must be finite and non-negative")
    if not w.sum() > 0:
        raise ValueError("weights must have a positive sum")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    w = w / w.sum()
    if scheme == "residual":
        return _residual(w, n, rng)
    if scheme == "multinomial":
        u = np.sort(rng.random(n))
    elif scheme == "stratified":
        u = (np.arange(n) + rng.random(n)) / n  # one uniform in each stratum [j/n, (j+1)/n)
    else:  # systematic: a single uniform shifted through every stratum
        u = (np.arange(n) + rng.random()) / n
    return _invert_cdf(w, u)


def offspring_counts(indices: np.ndarray, n_particles: int) -> np.ndarray:
    """Number of copies of each of ``n_particles`` particles in the ancestor ``indices``."""
    return np.bincount(np.asarray(indices, dtype=np.int64), minlength=n_particles)


def _residual(w: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    nw = n * w
    counts = np.floor(nw).astype(np.int64)
    rest = n - int(counts.sum())
    if rest > 0:
        # the fractional parts, renormalized, carry the remaining expected copies
        frac = nw - counts
        counts += np.bincount(_invert_cdf(frac / frac.sum(), np.sort(rng.random(rest))), minlength=len(w))
    return np.repeat(np.arange(len(w), dtype=np.int64), counts)


def _invert_cdf(w: np.ndarray, u: np.ndarray) -> np.ndarray:
    # Dividing by the last entry makes cdf[-1] exactly 1.0, so u < 1 never runs past the end;
    # side="right" gives particles of zero weight (a flat cdf step) no chance at all.
    cdf = np.cumsum(w)
    cdf /= cdf[-1]
    return np.searchsorted(cdf, u, side="right").astype(np.int64)


def _as_1d(x: np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array, got shape {x.shape}")
    return x


def keep_in_place(ancestors: np.ndarray) -> np.ndarray:
    """The same multiset of ancestors arranged so that every surviving particle keeps its own slot and
    extra copies fill the slots of the particles that died.

    Particles are exchangeable, so this changes nothing statistically; it lets a resampling step copy
    only the dead slots' state (e.g. a KV cache) instead of reordering every slot.
    """
    ancestors = np.asarray(ancestors, dtype=np.int64)
    n = len(ancestors)
    counts = np.bincount(ancestors, minlength=n)
    out = np.full(n, -1, dtype=np.int64)
    stay = np.flatnonzero(counts > 0)
    out[stay] = stay
    counts[stay] -= 1
    out[out < 0] = np.repeat(np.arange(n), counts)
    return out
