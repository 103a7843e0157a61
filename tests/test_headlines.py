"""Headline checks read out: held or not, and by how much."""

import math

from prmlab import headlines


def test_policy_targets():
    held = headlines.policy({1: 0.5, 16: 0.95})
    assert held == ["pass@1 is 0.500: the target (between 0.35 and 0.75) holds.",
                    "pass@16 is 0.950: the target (at least 0.9) holds, by +0.050."]
    missed = headlines.policy({1: 0.8, 8: 0.9})
    assert missed[0] == "pass@1 is 0.800: the target (between 0.35 and 0.75) does not hold, off by +0.050."
    assert missed[1] == "pass@16 is not measured here (largest k: 8)."
    assert "off by -0.050" in headlines.policy({1: 0.3})[0]
    assert "does not hold, by -0.100" in headlines.policy({1: 0.5, 16: 0.8})[1]


def test_prm_best_of_n_and_the_gap_to_oracle_labels():
    h = {"headline/n": 16, "headline/prm_best_of_n": 0.45, "headline/majority": 0.5,
         "headline/PRM-mc-hard_gap_to_oracle": 0.02, "headline/PRM-mc-soft_gap_to_oracle": -0.08}
    first, hard, soft = headlines.prm_best_of_n(h)
    assert first == ("At N = 16, PRM-guided best-of-N reaches 0.450 against 0.500 for majority vote: the headline "
                     "(PRM best-of-N beats majority vote) does not hold, by -0.050.")
    assert hard.startswith("PRM-mc-hard's best-of-16 is +0.020 below") and hard.endswith("(within 0.05) holds.")
    assert soft.endswith("(within 0.05) does not hold.")
    assert "holds, by +0.100" in headlines.prm_best_of_n({**h, "headline/prm_best_of_n": 0.6})[0]


def test_smc_scaling():
    rows = [{"target accuracy": 0.5, "smc": 2.0, "best_of_n": 8.0, "beam_search": math.inf, "majority": 16.0}]
    assert headlines.smc_scaling("oracle", rows) == (
        "Scorer oracle: SMC reaches 0.500 with N = 2.0; best_of_n needs 4.0x as many (N = 8.0); beam_search never "
        "reaches it. The headline (SMC needs fewer solutions than best-of-N and beam search) holds.")
    tied = headlines.smc_scaling("prm", [{**rows[0], "beam_search": 2.0}])
    assert "beam_search needs 1.0x as many (N = 2.0)" in tied and tied.endswith("does not hold.")
    never = headlines.smc_scaling("prm", [{**rows[0], "smc": math.inf}])
    assert never.startswith("Scorer prm: SMC never reaches 0.500") and never.endswith("does not hold.")
