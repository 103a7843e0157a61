"""Rewards in [0, 1] as SMC potentials ``log G``.

``"logit"`` (default, Puri et al.): ``log G = logit(r)``, so the "current" weighting gives
``softmax(logit(r) / tau)``; ``"log"``: ``log G = log r``. Rewards are clipped to ``[eps, 1 - eps]``
(float64 machine epsilon, as Puri et al.'s code does) so that a reward of exactly 0 or 1 still gives a
finite potential.
"""

from __future__ import annotations

import numpy as np

from prmlab.choices import check_choice

POTENTIALS = ("logit", "log")
_R_CLIP = float(np.finfo(float).eps)


def log_potential(rewards: np.ndarray, potential: str = "logit") -> np.ndarray:
    """``log G`` of rewards in [0, 1]: ``logit(r)`` or ``log(r)``, rewards clipped to [eps, 1 - eps]."""
    check_choice(potential, POTENTIALS, "potential")
    r = np.clip(np.asarray(rewards, dtype=np.float64), _R_CLIP, 1.0 - _R_CLIP)
    return np.log(r) - np.log1p(-r) if potential == "logit" else np.log(r)
