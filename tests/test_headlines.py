"""Headline checks read out: held or not, and by how much; RL claims judged by the two-standard-error rule
on hand-made histories."""

import math

import pytest

from prmlab import headlines
from prmlab.rl.prime_arms import prime_headline
from prmlab.rl.pure_arms import pure_headline


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
    assert hard.startswith("PRM-mc-hard's best-of-16 is 0.020 below") and hard.endswith("(within 0.03) holds.")
    assert soft.startswith("PRM-mc-soft's best-of-16 is 0.080 above") and soft.endswith("(within 0.03) does not hold.")
    assert "holds, by +0.100" in headlines.prm_best_of_n({**h, "headline/prm_best_of_n": 0.6})[0]


def test_prm_headline_against_the_baselines_that_could_embarrass_it():
    h = {"headline/n": 16, "headline/prm_best_of_n": 0.90, "headline/majority": 0.70, "headline/likelihood_best_of_n": 0.67,
         "headline/untrained_best_of_n": 0.88, "headline/greedy": 0.65,
         "headline/prm_within_problem_auroc": 0.96, "headline/likelihood_within_auroc_unused": 0.0,
         "headline/likelihood_within_problem_auroc": 0.76,
         "headline/prm_within_problem_auroc/misconception_problems": 0.94,
         "headline/likelihood_within_problem_auroc/misconception_problems": 0.86,
         "headline/prm_step_auroc/misconception": 0.99, "headline/orm_step_auroc/misconception": 0.98}
    _, rivals, overall, misconceived, orm = headlines.prm_best_of_n(h)
    # the readout before training (0.88) is within 0.05: the PRM does not beat every baseline
    assert "does not hold (smallest lead +0.020)" in rivals and "the readout before training 0.880" in rivals
    assert "0.960 against the likelihood's 0.760" in overall and overall.endswith("holds.")
    assert misconceived.startswith("Within a problem (where a misconception applies)") and misconceived.endswith("does not hold.")
    assert orm.endswith("does not hold.")
    beaten = headlines.prm_best_of_n({**h, "headline/untrained_best_of_n": 0.80})[1]
    assert beaten.endswith("holds (smallest lead +0.100).")


SMC_CLAIM = "the headline (SMC needs fewer solutions than best-of-N and beam search)"


def test_smc_scaling_reads_every_target():
    low = {"target accuracy": 0.45, "smc": 2.0, "best_of_n": 8.0, "beam_search": math.inf, "majority": 16.0,
           "greedy": math.inf}
    high = {**low, "target accuracy": 0.5, "smc": 4.0, "best_of_n": 16.0, "beam_search": 16.0}
    assert headlines.smc_scaling("oracle", [low, high]) == [
        "Scorer oracle: SMC reaches 0.450 with N = 2 solutions per problem (interpolated between the budgets run); "
        "best-of-N needs 4.0x as many (N = 8); beam search never reaches it.",
        "Scorer oracle: SMC reaches 0.500 with N = 4 solutions per problem (interpolated between the budgets run); "
        "best-of-N needs 4.0x as many (N = 16); beam search needs 4.0x as many (N = 16).",
        f"Scorer oracle: {SMC_CLAIM} holds at every target (0.450, 0.500)."]
    # SMC reaches the 90% target first but never the 100% one: the headline does not hold
    never = headlines.smc_scaling("prm", [low, {**high, "smc": math.inf}])
    assert never[1] == "Scorer prm: SMC never reaches 0.500 within the largest N."
    assert never[2] == f"Scorer prm: {SMC_CLAIM} holds at 0.450 but not at 0.500: it does not hold."
    tied = headlines.smc_scaling("prm", [{**low, "beam_search": 2.0}, {**high, "smc": math.inf}])
    assert "beam search needs 1.0x as many (N = 2)" in tied[0]
    assert "SMC reaches 0.450 with N = 3.4 solutions per problem (interpolated" in headlines.smc_scaling(
        "prm", [{**low, "smc": 3.4}])[0]  # N between the budgets run, said so
    assert tied[2] == f"Scorer prm: {SMC_CLAIM} does not hold at any target (0.450, 0.500)."
    greedy = headlines.smc_scaling("prm", [{**low, "greedy": 1.0}])
    assert greedy[0].endswith("Greedy decoding reaches it with one solution per problem.")
    only_bon = headlines.smc_scaling("likelihood", [{"target accuracy": 0.45, "smc": 2.0, "best_of_n": 8.0}])
    assert only_bon[-1] == ("Scorer likelihood: the headline (SMC needs fewer solutions than best-of-N) holds at every "
                            "target (0.450).")
    assert headlines.smc_scaling("x", [])[0].endswith("is not measured: best-of-N or SMC did not run with it.")


def versus(**parts):
    v = {"scorer": "prm", "n": 64, "method": "smc [prm]", "seeds": 3, "acc": 0.9, "tokens": 12000.0,
         "greedy": {"method": "greedy", "acc": 0.8, "tokens": 200.0, "diff": 0.1, "se": 0.01, "seeds": 3, "beats": True},
         "at_n": {"method": "majority_t0.5", "acc": 0.85, "tokens": 11000.0, "diff": 0.05, "se": 0.01, "seeds": 3,
                  "beats": True},
         "at_tokens": {"method": "best_of_n_t0.5 [prm]", "acc": 0.86, "tokens": 12000.0, "diff": 0.04, "se": 0.01,
                       "seeds": 3, "beats": True, "covered": True},
         "worth": True}
    for key, change in parts.items():
        v[key] = {**v[key], **change} if isinstance(change, dict) else change
    return v


def test_worth_its_tokens_only_where_the_search_method_beats_greedy_and_the_best_sampling_baseline():
    worth = headlines.smc_scaling("prm", [], versus())[-1]
    assert worth == (
        "Scorer prm: the best search method at N = 64, smc [prm], reaches 0.900 with 12000 tokens; greedy decoding "
        "0.800 with 200 (+0.100 ± 0.010); the best sampling baseline at N = 64, majority_t0.5, 0.850 (+0.050 ± 0.010); "
        "at equal tokens, best_of_n_t0.5 [prm] 0.860 (+0.040 ± 0.010). It is worth its tokens: it beats greedy "
        "decoding and the best sampling baseline at equal tokens by more than 2 standard errors over 3 seeds.")
    behind = headlines.worth_its_tokens(versus(greedy={"diff": -0.02, "beats": False}, worth=False))
    assert behind.endswith("It is not worth its tokens: it does not beat greedy.")
    both = headlines.worth_its_tokens(versus(greedy={"diff": 0.0, "beats": False}, worth=False,
                                             at_tokens={"diff": -0.01, "beats": False, "covered": False}))
    assert "(-0.010 ± 0.010), read at its largest N, which spends fewer tokens." in both
    assert both.endswith("it does not beat greedy or best_of_n_t0.5 [prm].")
    noisy = headlines.worth_its_tokens(versus(seeds=2, worth=False, at_tokens={"beats": False, "se": math.nan}))
    assert "at equal tokens, best_of_n_t0.5 [prm] 0.860 (+0.040)." in noisy
    assert noisy.endswith("It is not shown to be worth its tokens: its lead over best_of_n_t0.5 [prm] is within noise "
                          "(a difference counts beyond 2 standard errors over at least 3 seeds; 2 here).")


def test_seed_difference_holds_only_beyond_two_standard_errors_over_three_seeds():
    # mean 0.52 - 0.41; variances of the means (ddof = 1): 0.0004 / 3 and 0.0001 / 3
    d = headlines.seed_difference([0.50, 0.52, 0.54], [0.40, 0.41, 0.42])
    assert d.mean == pytest.approx(0.11) and d.se == pytest.approx(math.sqrt(0.0005 / 3)) and d.seeds == 3 and d.holds
    noise = headlines.seed_difference([0.50, 0.45, 0.55], [0.47, 0.42, 0.52])  # +0.03, se sqrt(2 * 0.0025 / 3) = 0.041
    assert noise.mean == pytest.approx(0.03) and noise.se == pytest.approx(math.sqrt(0.005 / 3)) and not noise.holds
    two = headlines.seed_difference([0.60, 0.62], [0.40, 0.41])  # far beyond 2 SE (0.011), but two seeds
    assert two.mean == pytest.approx(0.205) and two.se == pytest.approx(math.sqrt(0.000125)) and two.seeds == 2
    assert not two.holds
    flat = headlines.seed_difference([0.5] * 3, [0.4] * 3)  # sd = 0: any positive difference is beyond 0 SE
    assert flat.mean == pytest.approx(0.1) and flat.se == 0.0 and flat.holds
    assert not headlines.seed_difference([0.5] * 3, [0.5] * 3).holds  # 0 is not above 2 x 0
    assert not headlines.seed_difference([0.4] * 3, [0.5] * 3).holds  # the claim is one-sided: a > b
    assert math.isnan(headlines.seed_difference([0.5], [0.4]).se)  # one seed: no standard error
    never = headlines.seed_difference([10.0, 10.0, 10.0], [5.0, math.inf, 5.0])  # an arm never reached a target
    assert never.mean == -math.inf and math.isnan(never.se) and not never.holds


def test_noise_verdict_says_holds_within_noise_or_the_reverse():
    assert headlines.noise_verdict(1.0, 0.11, 0.0129, 3) == "holds (difference +0.110, standard error 0.013 over 3 seeds)"
    assert headlines.noise_verdict(0.0, 0.03, 0.041, 3) == (
        "is within noise (difference +0.030, standard error 0.041 over 3 seeds; a claim needs more than 2 standard errors)")
    assert headlines.noise_verdict(0.0, 0.205, 0.011, 2) == (
        "is within noise (2 seeds; a claim needs at least 3; difference +0.205, standard error 0.011 over 2 seeds)")
    assert headlines.noise_verdict(0.0, 0.3, math.nan, 1, " steps", 1) == (
        "is within noise (1 seed; a claim needs at least 3; difference +0.3 steps over 1 seed)")
    assert headlines.noise_verdict(0.0, -0.1, 0.01, 3).startswith("does not hold: the reverse is beyond 2 standard errors")
    assert headlines.noise_verdict(0.0, 0.1, 0.01, 3, why_not="X") == (
        "does not hold: X (difference +0.100, standard error 0.010 over 3 seeds)")


def _hist(acc, greedy=None, wrong=None, every=5, per_step=100):
    """A loop history: evaluations ``acc`` (and ``greedy``) every ``every`` RL steps and after the last; the
    oracle's wrong-step share ``wrong[0]`` over the first half of the RL steps and ``wrong[1]`` over the second."""
    steps = (len(acc) - 1) * every
    rows = []
    for s in range(steps):
        row = {"rollout/accuracy": 0.5, "rollout/sampled": float(per_step), "train/rollouts_seen": float((s + 1) * per_step)}
        if wrong is not None:
            row["oracle/wrong_step_share"] = wrong[0] if s < steps // 2 else wrong[1]
        if s % every == 0:
            row["eval/accuracy"] = acc[s // every]
            if greedy is not None:
                row["eval/accuracy_greedy"] = greedy[s // every]
        rows.append(row)
    final = {"eval/accuracy": acc[-1], "train/rollouts_seen": float(steps * per_step)}
    if greedy is not None:
        final["eval/accuracy_greedy"] = greedy[-1]
    return rows + [final]


START = (0.40, 0.42, 0.38)  # seeds 0-2: the SFT policy's sampled accuracy on each seed's evaluation stream


def _arm(mids, finals, greedy_finals, wrong_lasts, wrong_first=0.20):
    """Three seeds of one arm: sampled accuracy at steps 0, 5, 10; greedy 0.80 at the start (the same policy)."""
    return [_hist([s, m, f], [0.80, 0.80, g], (wrong_first, w))
            for s, m, f, g, w in zip(START, mids, finals, greedy_finals, wrong_lasts)]


def _pure_arms():
    """PURE's story, three seeds: sum-form is hacked (wrong steps 0.20 -> ~0.50) and collapses; min-form rises
    and stays; min-form + 10% verifiable is best; min-form reaches the verifiable arm's final accuracy at
    step 4.2 (5/6 of the way from its 0.40 at step 0 to its 0.46 at step 5) where that arm needs step 10."""
    return {
        "verifiable": _arm((0.42, 0.44, 0.40), (0.45, 0.47, 0.43), (0.82, 0.83, 0.81), (0.15, 0.15, 0.15)),
        "prm-sum": _arm((0.45, 0.47, 0.43), (0.10, 0.14, 0.12), (0.50, 0.55, 0.45), (0.50, 0.52, 0.48)),
        "prm-min": _arm((0.46, 0.48, 0.44), (0.50, 0.52, 0.48), (0.85, 0.86, 0.84), (0.18, 0.18, 0.18)),
        "prm-min+vr": _arm((0.46, 0.48, 0.44), (0.60, 0.62, 0.58), (0.88, 0.89, 0.87), (0.16, 0.16, 0.16)),
        "oracle-min": _arm((0.50, 0.52, 0.48), (0.70, 0.72, 0.68), (0.90, 0.91, 0.89), (0.05, 0.05, 0.05)),
    }


SE_3 = math.sqrt(2 * 0.0004 / 3)  # two arms whose three seeds are spread +-0.02 around their means
SE_1 = math.sqrt(0.0004 / 3)  # one such arm against a constant


def test_pure_headline_judges_each_claim_on_three_seeds():
    h = pure_headline(_pure_arms())
    assert h["headline/seeds"] == 3.0
    # sum-form: start 0.40 -> final 0.12 (beyond 2 x SE_3), wrong steps 0.20 -> 0.50 (beyond 2 x SE_1)
    assert h["headline/sum_form_collapses"] == 1.0
    assert h["headline/sum_form_collapses_diff"] == pytest.approx(0.28) and h["headline/sum_form_collapses_se"] == pytest.approx(SE_3)
    assert h["headline/prm-sum/wrong_step_rise"] == pytest.approx(0.30) and h["headline/prm-sum/wrong_step_rise_se"] == pytest.approx(SE_1)
    # falls from the best: sum-form 0.35, 0.33, 0.31; min-form 0 on every seed (sd 0)
    assert h["headline/min_form_stable"] == 1.0
    assert h["headline/min_form_stable_diff"] == pytest.approx(0.33) and h["headline/min_form_stable_se"] == pytest.approx(SE_1)
    assert h["headline/min_form_stable_wrong_diff"] == pytest.approx(0.30 + 0.02)
    assert h["headline/min_form_stable_wrong_se"] == pytest.approx(SE_1)
    assert h["headline/prm-min/fall_from_best"] == pytest.approx(0.0) and h["headline/prm-min/wrong_step_rise"] == pytest.approx(-0.02)
    # the best arm, against the runner-up prm-min (the oracle arm, 0.70, is a ceiling, not a competitor)
    assert h["headline/min_vr_best"] == 1.0
    assert h["headline/min_vr_best_diff"] == pytest.approx(0.10) and h["headline/min_vr_best_se"] == pytest.approx(SE_3)
    # steps: verifiable 10, 10, 10; min-form 25/6 on every seed (interpolated; sd 0)
    assert h["headline/min_form_faster"] == 1.0 and h["headline/min_form_missed"] == 0.0
    assert h["headline/verifiable_steps_to_final"] == 10
    assert h["headline/min_form_steps_to_verifiable"] == pytest.approx(25 / 6)
    assert h["headline/min_form_faster_diff"] == pytest.approx(35 / 6) and h["headline/min_form_faster_se"] == pytest.approx(0)
    # greedy beside sampled; an arm improves the policy only if both rise beyond noise
    assert h["headline/prm-min/final_accuracy_greedy"] == pytest.approx(0.85)
    assert h["headline/prm-min/greedy_change"] == pytest.approx(0.05)
    assert h["headline/prm-min/greedy_change_se"] == pytest.approx(math.sqrt(0.0001 / 3))
    assert h["headline/prm-min/improves"] == 1.0 and h["headline/prm-sum/improves"] == 0.0
    sentences = headlines.pure(h)
    assert sentences[0] == (
        "Sum-form ends at 0.120 (-0.280 from the start; greedy 0.500, -0.300 from the start); the oracle's wrong-step "
        "share moved +0.300: 'sum-form is hacked and collapses' holds (fall from the start +0.280, standard error 0.016 "
        "over 3 seeds).")
    assert sentences[1] == (
        "Min-form ends at 0.500 (+0.100 from the start; greedy 0.850, +0.050 from the start), 0.000 below its best "
        "evaluation against sum-form's 0.330; the oracle's wrong-step share moved -0.020 under min-form and +0.300 under "
        "sum-form: 'min-form trains stably' (where sum-form falls) holds (sum-form fall minus min-form fall +0.330, "
        "standard error 0.012 over 3 seeds).")
    assert sentences[2] == (
        "Min-form + 10% verifiable ends at 0.600 (+0.200 from the start; greedy 0.880, +0.080 from the start): 'it is "
        "the best arm' holds (difference to prm-min +0.100, standard error 0.016 over 3 seeds).")
    assert sentences[3] == (
        "The verifiable-only arm ends at 0.450 (+0.050 from the start; greedy 0.820, +0.020 from the start) and first "
        "reaches that accuracy at RL step 10; min-form reaches it at RL step 4.2 (interpolated between evaluations; "
        "means over seeds): 'min-form gets there in fewer steps' holds (steps saved +5.8 steps, standard error 0.0 steps over 3 seeds).")
    assert sentences[4].startswith("Sampled pass@1 and greedy accuracy at the end (change from the start): verifiable "
                                   "0.450 (+0.050) and 0.820 (+0.020); prm-sum 0.120 (-0.280) and 0.500 (-0.300);")
    assert sentences[4].endswith("at least 3 seeds): verifiable, prm-min, prm-min+vr, oracle-min.")
    assert len(sentences) == 5  # no arm's greedy accuracy fell while its sampled accuracy rose


def test_pure_headline_with_two_seeds_claims_nothing():
    h = pure_headline({a: hs[:2] for a, hs in _pure_arms().items()})
    assert h["headline/seeds"] == 2.0
    assert {h[f"headline/{c}"] for c in ("sum_form_collapses", "min_form_stable", "min_vr_best", "min_form_faster")} == {0.0}
    assert h["headline/sum_form_collapses_diff"] == pytest.approx(0.29)  # start 0.41, final 0.12
    assert h["headline/sum_form_collapses_se"] == pytest.approx(math.sqrt(0.0002 / 2 + 0.0008 / 2))
    sentences = headlines.pure(h)
    assert all("is within noise (2 seeds; a claim needs at least 3; " in s for s in sentences[:4])
    assert sentences[-1].endswith("at least 3 seeds): none.")


def test_min_form_stable_reads_sum_forms_course_not_the_start_alone():
    arms = _pure_arms()
    # sum-form trains as well as min-form: min-form's own course is stable, but it is no contrast
    arms["prm-sum"] = _arm((0.46, 0.48, 0.44), (0.50, 0.52, 0.48), (0.85, 0.86, 0.84), (0.18, 0.18, 0.18))
    h = pure_headline(arms)
    assert h["headline/min_form_stable"] == 0.0 and h["headline/sum_form_collapses"] == 0.0
    assert h["headline/min_form_stable_diff"] == 0.0 and h["headline/min_form_stable_se"] == 0.0
    assert "'min-form trains stably' (where sum-form falls) is within noise (sum-form fall minus min-form fall +0.000" in \
        headlines.pure(h)[1]
    assert "'sum-form is hacked and collapses' does not hold: the reverse" in headlines.pure(h)[0]
    # sum-form falls, but without more wrong steps than min-form: not PURE's collapse through hacking
    arms["prm-sum"] = _arm((0.45, 0.47, 0.43), (0.10, 0.14, 0.12), (0.50, 0.55, 0.45), (0.18, 0.18, 0.18))
    h = pure_headline(arms)
    assert h["headline/min_form_stable"] == 0.0 and h["headline/min_form_stable_wrong_diff"] == pytest.approx(0.0)
    assert "does not hold: sum-form's wrong-step share does not rise more than min-form's beyond noise" in headlines.pure(h)[1]
    # min-form falls from its best as sum-form does, less far: min-form itself is not stable
    arms = _pure_arms()
    arms["prm-min"] = _arm((0.56, 0.58, 0.54), (0.40, 0.42, 0.38), (0.85, 0.86, 0.84), (0.18, 0.18, 0.18))
    h = pure_headline(arms)
    assert h["headline/prm-min/fall_from_best"] == pytest.approx(0.16)
    assert h["headline/min_form_stable"] == 0.0 and h["headline/min_form_stable_diff"] == pytest.approx(0.33 - 0.16)
    assert "does not hold: min-form itself falls from its best beyond noise" in headlines.pure(h)[1]
    # without the oracle (real data) the claim reads the accuracy curves alone
    plain = {a: [[{k: v for k, v in row.items() if not k.startswith("oracle/")} for row in hist] for hist in hs]
             for a, hs in _pure_arms().items()}
    h = pure_headline(plain)
    assert h["headline/min_form_stable"] == 1.0 and h["headline/sum_form_collapses"] == 1.0
    assert "headline/min_form_stable_wrong_diff" not in h and "headline/prm-min/wrong_step_rise" not in h


def test_an_arm_whose_greedy_accuracy_falls_does_not_improve_the_policy():
    """As in the demo run of issue 19: every arm's sampled pass@1 rises while its greedy accuracy falls."""
    arms = {a: [_hist([s, s + 0.05, s + d + e], [0.84, 0.80, 0.75 + e], (0.23, 0.21))
                for s, e in zip(START, (0.0, 0.03, -0.03))]
            for a, d in (("verifiable", 0.10), ("prm-sum", 0.11), ("prm-min", 0.14), ("prm-min+vr", 0.12))}
    h = pure_headline(arms)
    assert {h[f"headline/{a}/improves"] for a in arms} == {0.0}
    assert h["headline/prm-min/greedy_change"] == pytest.approx(-0.09)
    assert h["headline/prm-min/accuracy_change"] == pytest.approx(0.14)
    sentences = headlines.pure(h)
    assert sentences[-2].endswith("at least 3 seeds): none.")
    assert sentences[-1] == (
        "Greedy accuracy fell while sampled pass@1 rose in verifiable (greedy -0.090, sampled +0.100), prm-sum (greedy "
        "-0.090, sampled +0.110), prm-min (greedy -0.090, sampled +0.140), prm-min+vr (greedy -0.090, sampled +0.120): "
        "the sampled gain does not carry over to greedy decoding, which PURE and PRIME evaluate.")
    # the best arm beyond noise still is not "the best arm" if its greedy accuracy falls
    best = _pure_arms()
    best["prm-min+vr"] = _arm((0.46, 0.48, 0.44), (0.60, 0.62, 0.58), (0.70, 0.71, 0.69), (0.16, 0.16, 0.16))
    h = pure_headline(best)
    assert h["headline/min_vr_best"] == 0.0 and h["headline/prm-min+vr/improves"] == 0.0
    assert "'it is the best arm' does not hold: its greedy accuracy does not rise" in headlines.pure(h)[2]


def test_min_form_faster_within_noise_and_never():
    arms = _pure_arms()
    # min-form reaches the verifiable arm's final accuracy (0.45, 0.47, 0.43) exactly at steps 5, 10, 10: +1.7
    # steps, SE 1.7 (not beyond 2 SE)
    arms["prm-min"] = _arm((0.45, 0.46, 0.42), (0.50, 0.47, 0.43), (0.85, 0.86, 0.84), (0.18, 0.18, 0.18))
    h = pure_headline(arms)
    assert h["headline/min_form_steps_to_verifiable"] == pytest.approx(25 / 3)
    assert h["headline/min_form_faster_diff"] == pytest.approx(5 / 3)
    assert h["headline/min_form_faster_se"] == pytest.approx(math.sqrt(25 / 3 / 3))
    assert h["headline/min_form_faster"] == 0.0
    assert headlines.pure(h)[3].endswith(
        "min-form reaches it at RL step 8.3 (interpolated between evaluations; means over seeds): 'min-form gets there "
        "in fewer steps' is within noise "
        "(steps saved +1.7 steps, standard error 1.7 steps over 3 seeds; a claim needs more than 2 standard errors).")
    arms["prm-min"] = _arm((0.30, 0.30, 0.30), (0.30, 0.30, 0.47), (0.85, 0.86, 0.84), (0.18, 0.18, 0.18))
    h = pure_headline(arms)
    assert h["headline/min_form_missed"] == 2.0 and h["headline/min_form_steps_to_verifiable"] == math.inf
    assert h["headline/min_form_faster"] == 0.0
    assert headlines.pure(h)[3].endswith("min-form reaches it never on 2 of 3 seed(s) (means over seeds): 'min-form "
                                         "gets there in fewer steps' does not hold (min-form never reaches it on 2 of 3 seed(s)).")


def _prime_arms():
    """Three seeds: RLOO +0.08 in 1,000 rollouts, greedy 0.80 -> 0.78; PRIME +0.12, reaches RLOO's final
    accuracy at its evaluation after 500 rollouts, greedy 0.80 -> 0.85."""
    rloo = [_hist([s, s + 0.04, s + 0.08], [0.80, 0.80, g]) for s, g in zip(START, (0.78, 0.79, 0.77))]
    prime = [_hist([s, s + 0.08, s + 0.12], [0.80, 0.80, g]) for s, g in zip(START, (0.85, 0.86, 0.84))]
    return {"rloo": rloo, "prime": prime}


def test_prime_headline_judges_speed_and_gain_on_three_seeds():
    h = prime_headline(_prime_arms())
    assert h["headline/sample_efficiency"] == pytest.approx(2.0) and h["headline/seeds"] == 3.0
    assert h["headline/prime_faster"] == 1.0
    assert h["headline/prime_faster_diff"] == pytest.approx(500.0) and h["headline/prime_faster_se"] == 0.0
    assert h["headline/final_gain"] == pytest.approx(0.04) and h["headline/final_gain_se"] == pytest.approx(SE_3)
    assert h["headline/final_gain_holds"] == 1.0
    assert h["headline/final_gain_greedy"] == pytest.approx(0.07)
    assert h["headline/final_gain_greedy_se"] == pytest.approx(math.sqrt(2 * 0.0001 / 3))
    assert h["headline/prime/improves"] == 1.0 and h["headline/rloo/improves"] == 0.0
    assert headlines.prime(h) == [
        "PRIME reaches outcome-only RLOO's final accuracy with 2.00x fewer rollouts (seeds: 2.00 to 2.00), over 3 "
        "seed(s): 'PRIME learns faster than outcome-only RLOO' holds (rollouts saved +500 rollouts, standard error 0 "
        "rollouts over 3 seeds) (the paper: 2.5x fewer).",
        "PRIME ends at 0.520 (+0.120 from the start; greedy 0.850, +0.050 from the start) and outcome-only RLOO at 0.480 "
        "(+0.080 from the start; greedy 0.780, -0.020 from the start): PRIME's final accuracy is +0.040 against RLOO's "
        "(seeds: +0.040 to +0.040) and +0.070 in greedy accuracy (standard error 0.008): a final gain holds (difference "
        "+0.040, standard error 0.016 over 3 seeds) (the paper: +6.9 points).",
        "Sampled pass@1 and greedy accuracy at the end (change from the start): PRIME 0.520 (+0.120) and 0.850 (+0.050); "
        "outcome-only RLOO 0.480 (+0.080) and 0.780 (-0.020). Arms that improve the policy (sampled and greedy accuracy "
        "both rise by more than 2 standard errors over at least 3 seeds): PRIME.",
        "Greedy accuracy fell while sampled pass@1 rose in outcome-only RLOO (greedy -0.020, sampled +0.080): the sampled "
        "gain does not carry over to greedy decoding, which PURE and PRIME evaluate."]
    assert headlines.prime({**h, "headline/implicit_prm_rollout_auroc": 0.56})[2] == (
        "On the policy's fresh rollouts the implicit PRM ranks a prompt's responses with AUROC 0.56 on average (0.5: "
        "chance), the signal its process credit adds to the outcome's.")


def test_prime_headline_with_two_seeds_a_falling_greedy_accuracy_or_a_miss():
    arms = _prime_arms()
    two = prime_headline({a: hs[:2] for a, hs in arms.items()})
    assert two["headline/prime_faster"] == 0.0 and two["headline/final_gain_holds"] == 0.0
    assert "'PRIME learns faster than outcome-only RLOO' is within noise (2 seeds; a claim needs at least 3; " \
           "rollouts saved +500 rollouts" in headlines.prime(two)[0]
    assert "a final gain is within noise (2 seeds; a claim needs at least 3; difference +0.040" in headlines.prime(two)[1]
    # PRIME's sampled accuracy rises beyond noise, its greedy accuracy does not: no gain is claimed
    arms["prime"] = [_hist([s, s + 0.09, s + 0.12], [0.80, 0.80, 0.80]) for s in START]
    h = prime_headline(arms)
    assert h["headline/prime/improves"] == 0.0 and h["headline/final_gain_holds"] == 0.0 and h["headline/prime_faster"] == 0.0
    assert "a final gain does not hold: PRIME's greedy accuracy does not rise with its sampled accuracy" in headlines.prime(h)[1]
    # PRIME never reaches RLOO's final accuracy on one seed
    arms["prime"][1] = _hist([0.42, 0.42, 0.42], [0.80, 0.80, 0.85])
    h = prime_headline(arms)
    assert h["headline/prime_missed"] == 1.0 and h["headline/prime_faster"] == 0.0
    assert h["headline/prime_faster_diff"] == -math.inf and math.isnan(h["headline/prime_faster_se"])
    assert ("over 3 seed(s); PRIME never reached it on 1 of 3 seed(s), counted as 0: 'PRIME learns faster than "
            "outcome-only RLOO' does not hold (the paper: 2.5x fewer).") in headlines.prime(h)[0]


def test_a_gap_is_read_with_its_direction_not_a_negative_number():
    """Issue 23: "-0.005 below" read as a gap of 0.005 in the other direction."""
    above = headlines.self_certainty({"eval/greedy_accuracy": 0.855, "eval/pass_at_16": 0.85})[0]
    assert "Greedy decoding solves 0.855 of the problems, 0.005 above pass@16 (0.850)" in above and "-0.005" not in above
    below = headlines.self_certainty({"eval/greedy_accuracy": 0.6, "eval/pass_at_16": 0.85})[0]
    assert "0.250 below pass@16" in below and below.endswith("holds.")


def test_prime_speed_reads_as_fewer_as_many_or_more_rollouts():
    """Issue 23: "1.00x fewer rollouts" for a tie; a ratio under 1 is more rollouts, not fewer."""
    h = prime_headline(_prime_arms())
    said = {eff: headlines.prime({**h, "headline/sample_efficiency": eff})[0] for eff in (2.0, 1.0, 0.8)}
    assert "with 2.00x fewer rollouts" in said[2.0]
    assert "with as many rollouts (1.00x)" in said[1.0] and "fewer rollouts" not in said[1.0]
    assert "with 1.25x as many rollouts" in said[0.8] and "fewer rollouts" not in said[0.8]


def test_every_headline_line_says_how_many_seeds_and_problems_it_rests_on():
    lines = headlines.pure(pure_headline(_pure_arms()))
    based = headlines.rests_on(lines, 3.0, 100)
    assert len(based) == len(lines) and all(b == f"{line} [3 seeds × 100 problems]" for b, line in zip(based, lines))
    assert headlines.rests_on(["pass@1 is 0.500."], 1, 1) == ["pass@1 is 0.500. [1 seed × 1 problem]"]
