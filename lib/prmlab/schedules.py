"""Learning-rate schedules of prmlab's training loops (the policy's SFT in 00, PRM training in 01)."""

from __future__ import annotations

import math

from .choices import check_choice

SCHEDULES = ("wsd", "cosine")


def lr_at(step: int, peak: float, steps: int, warmup: int, schedule: str = "cosine", decay_fraction: float = 0.3) -> float:
    """Learning rate at ``step``: linear warm-up to ``peak``, then ``schedule`` (both end at 10% of it)."""
    check_choice(schedule, SCHEDULES, "schedule")
    if step < warmup:
        return peak * (step + 1) / warmup
    if schedule == "wsd":
        # a short budget learns most at the peak rate; the final decay settles the weights
        decay_start = steps * (1 - decay_fraction)
        if step < decay_start:
            return peak
        t = (step - decay_start) / max(1.0, steps - decay_start)
        return peak * (1.0 - 0.9 * min(1.0, t))
    t = (step - warmup) / max(1, steps - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))
