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
    assert hard.startswith("PRM-mc-hard's best-of-16 is +0.020 below") and hard.endswith("(within 0.03) holds.")
    assert soft.endswith("(within 0.03) does not hold.")
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


def test_pure_claims_say_where_each_arm_ended():
    h = {"headline/sum_form_collapses": 1.0, "headline/prm-sum/final_accuracy": 0.1, "headline/prm-sum/accuracy_change": -0.3,
         "headline/min_form_stable": 0.0, "headline/prm-min/final_accuracy": 0.35, "headline/prm-min/accuracy_change": -0.05,
         "headline/min_form_faster": 1.0, "headline/verifiable_steps_to_final": 30.0,
         "headline/min_form_steps_to_verifiable": 20.0}
    assert headlines.pure(h) == [  # the min-form + verifiable arm did not run: its claim is left out
        "Sum-form ends at 0.100 (-0.300 from the start): 'sum-form is hacked and collapses' holds.",
        "Min-form ends at 0.350 (-0.050 from the start): 'min-form trains stably' does not hold.",
        "The verifiable-only arm reaches its final accuracy at RL step 30; min-form reaches it at RL step 20: "
        "'min-form gets there in fewer steps' holds."]
    never = headlines.pure({**h, "headline/min_form_faster": 0.0, "headline/min_form_steps_to_verifiable": math.inf})
    assert never[-1].endswith("min-form reaches it never: 'min-form gets there in fewer steps' does not hold.")
    assert headlines.pure({}) == []


def test_prime_claims_give_the_factor_and_the_gain_with_the_seed_spread():
    h = {"headline/sample_efficiency": 1.5, "headline/sample_efficiency_min": 1.2, "headline/sample_efficiency_max": 1.8,
         "headline/final_gain": 0.04, "headline/final_gain_min": -0.01, "headline/final_gain_max": 0.09, "headline/seeds": 2.0}
    assert headlines.prime(h) == [
        "PRIME reaches outcome-only RLOO's final accuracy with 1.50x fewer rollouts (seeds: 1.20 to 1.80), over 2 seed(s): "
        "'PRIME learns faster than outcome-only RLOO' holds (the paper: 2.5x).",
        "PRIME's final accuracy is +0.040 against RLOO's (seeds: -0.010 to +0.090): a final gain holds (the paper: +6.9 points)."]
    slower = headlines.prime({**h, "headline/sample_efficiency": 0.8, "headline/final_gain": -0.02, "headline/seeds": 1.0})
    assert "with 0.80x fewer rollouts, over 1 seed(s): 'PRIME learns faster than outcome-only RLOO' does not hold" in slower[0]
    assert slower[1] == "PRIME's final accuracy is -0.020 against RLOO's: a final gain does not hold (the paper: +6.9 points)."
    missed = headlines.prime({**h, "headline/sample_efficiency": 0.5, "headline/sample_efficiency_min": 0.0,
                              "headline/prime_missed": 1.0, "headline/implicit_prm_rollout_auroc": 0.56})
    assert "over 2 seed(s); PRIME never reached it on 1 of 2 seed(s), counted as 0: " in missed[0]
    assert missed[2] == ("On the policy's fresh rollouts the implicit PRM ranks a prompt's responses with AUROC 0.56 on "
                         "average (0.5: chance), the signal its process credit adds to the outcome's.")
