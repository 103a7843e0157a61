"""Reproduction checks on the tiny profile (minutes each): `make test-slow` / `pytest -m slow`.

Each runs a notebook exactly as a user would (`prmlab run NN`, tiny profile) into one temporary MLflow
store shared by the module (01 uses the policy of 00, 04 the PRM of 01) and checks the numbers the
issues ask for. Headlines that the tiny profile does not reproduce are kept as strict xfails: they
document the negative result, and they fail loudly the day they start to hold (update the README then).
"""

import os
import subprocess
import sys

import pytest

from prmlab import tracking

pytestmark = pytest.mark.slow


def run_notebook(number: str, *args: str) -> str:
    res = subprocess.run([sys.executable, "-m", "prmlab.cli", "run", number, *args], capture_output=True, text=True,
                         env=os.environ.copy())
    assert res.returncode == 0, res.stdout + res.stderr
    return next(ln.split(": ")[1] for ln in res.stdout.splitlines() if ln.startswith("run_id: "))


_runs: dict[str, str] = {}
# The RL headlines are judged on two seeds (the notebooks' tiny default runs one).
ARGS = {"02": ("-p", "repetitions", "2"), "03": ("-p", "repetitions", "2")}


def finished_run(number: str) -> str:
    """Run id of notebook ``number`` on the tiny profile in this module's store (run once, in order)."""
    for needed in ("00", "01", "02", "03", "04"):
        if needed not in _runs:
            _runs[needed] = run_notebook(needed, *ARGS.get(needed, ()))
        if needed == number:
            return _runs[needed]
    raise ValueError(number)


def metrics_of(number: str) -> dict:
    return tracking.client().get_run(finished_run(number)).data.metrics


def history(number: str, key: str) -> dict[int, float]:
    return {m.step: m.value for m in tracking.client().get_metric_history(finished_run(number), key)}


@pytest.fixture(scope="module", autouse=True)
def _store(module_store):
    _runs.clear()
    yield
    _runs.clear()


def test_00_base_policy_targets():
    """SFT trains in at most 3 minutes; pass@1 in [35%, 75%]; pass@16 at least 90%."""
    m = metrics_of("00")
    assert m["perf/train_seconds"] <= 180, m["perf/train_seconds"]
    assert 0.35 <= m["eval/pass_at_1"] <= 0.75, m["eval/pass_at_1"]
    assert m["eval/pass_at_16"] >= 0.90, m["eval/pass_at_16"]


def test_01_monte_carlo_labels_against_the_oracle():
    """Math-Shepherd hard labels: more completions label fewer steps bad (recall of bad steps can only
    fall, precision rises), cost grows linearly in N, and at N = 8 they agree with the oracle on most steps."""
    precision, recall = history("01", "label/bad_precision"), history("01", "label/bad_recall")
    tokens = history("01", "label/tokens")
    ns = sorted(recall)
    assert ns[0] == 1 and len(ns) >= 3
    assert all(recall[a] >= recall[b] for a, b in zip(ns, ns[1:])), recall
    assert all(precision[a] <= precision[b] + 0.02 for a, b in zip(ns, ns[1:])), precision
    assert all(tokens[b] > 1.8 * tokens[a] for a, b in zip(ns, ns[1:])), tokens
    m = metrics_of("01")
    assert m["label/agreement"] >= 0.85 and m["label/bad_precision"] >= 0.85, m
    assert m["label/agreement"] > m["label/outcome_agreement"]


def test_01_the_prm_ranks_solutions_within_a_problem():
    """The PRM's targets on the eval split (200 problems x 64 samples): within-problem AUROC at least
    0.85 for the oracle-labelled PRM and 0.80 for the Monte Carlo one; step AUROC of ok steps against
    each kind of first error at least 0.85; best-of-16 above majority vote, PRM-weighted majority above
    majority at 16 and 64, and the Monte Carlo PRM within 0.03 of the oracle one at best-of-16.
    (Seed 0 of 2026-12-01: 0.898 / 0.900; kinds 0.956-1.0; best-of-16 0.827 against majority 0.709.)"""
    m = metrics_of("01")
    assert m["eval/PRM-oracle/within_problem_auroc"] >= 0.85, m
    assert m["eval/PRM-mc-hard/within_problem_auroc"] >= 0.80, m
    for name in ("PRM-oracle", "PRM-mc-hard"):
        for kind in ("arithmetic", "carry", "skipped", "extra"):
            assert m[f"eval/{name}/step_auroc/{kind}"] >= 0.85, (name, kind, m)
    assert m["headline/prm_best_of_n"] > m["headline/majority"], m
    weighted, majority = history("01", "bon/PRM-mc-hard-weighted_majority/min"), history("01", "bon/majority_vote")
    assert weighted[16] > majority[16] and weighted[64] > majority[64], (weighted, majority)
    assert abs(m["headline/PRM-mc-hard_gap_to_oracle"]) <= 0.03, m
    assert m["label/tokens"] > 0 and m["perf/label_seconds"] > 0  # the labelling cost is reported


def test_01_outcome_supervision_is_as_good_with_the_likelihood_readout():
    """With the head readout a PRM ranked steps far better than an ORM of the same backbone (by more than
    0.1 step AUROC, the check this one replaces); with the likelihood readout both read the backbone's
    token likelihoods, so the ORM is about as good: the step labels add little on this task (0.984
    against 0.988, seed 0 of 2026-12-01)."""
    m = metrics_of("01")
    assert abs(m["eval/PRM-mc-hard/step_auroc"] - m["eval/ORM/step_auroc"]) <= 0.05, m
    assert abs(m["eval/PRM-oracle/step_auroc"] - m["eval/PRM-mc-hard/step_auroc"]) <= 0.05, m


def test_04_particle_filtering_needs_fewer_solutions_than_best_of_n_with_an_exact_scorer():
    """With the exact step oracle as the PRM (a perfect verifier), particle filtering reaches the lower
    target accuracy with at most half the solutions best-of-N needs, and at N = 4 it is well ahead of
    best-of-N and not behind beam search (Puri et al.'s ordering; on the tiny task SMC and beam search
    are close)."""
    acc = {m: history("04", f"acc/{m}/oracle") for m in ("smc", "best_of_n", "beam_search")}
    assert acc["smc"][4] >= acc["best_of_n"][4] + 0.1, acc
    assert acc["smc"][4] >= acc["beam_search"][4] - 0.03, acc
    need = {m: history("04", f"headline/oracle/n_to_reach/{m}") for m in ("smc", "best_of_n")}
    target = min(need["smc"])
    assert target in need["best_of_n"], need  # best-of-N reaches the lower target within max_n
    assert 2 * need["smc"][target] <= need["best_of_n"][target], need


def test_04_methods_report_equal_budgets():
    """Every method spends the same number of solutions per N, and tokens within 50% of best-of-N's."""
    bon = history("04", "tokens/best_of_n/oracle")
    for m in ("smc", "beam_search", "dvts"):
        tokens = history("04", f"tokens/{m}/oracle")
        for n, t in tokens.items():
            assert 0.5 * bon[n] <= t <= 1.5 * bon[n], (m, n, t, bon[n])


def test_04_with_the_trained_prm_smc_beats_best_of_n_at_small_n_and_majority_at_16():
    """Guided by 01's PRM, particle filtering is ahead of best-of-N at N = 2 and 4 (seeds 0-1 of 2026-12-01:
    0.64 / 0.78 against 0.52 / 0.69) and of majority vote at N = 16 (0.84 against 0.71)."""
    smc, bon, majority = history("04", "acc/smc/prm"), history("04", "acc/best_of_n/prm"), history("04", "acc/majority")
    assert smc[2] > bon[2] + 0.05 and smc[4] > bon[4] + 0.05, (smc, bon)
    assert smc[16] > majority[16], (smc, majority)


@pytest.mark.xfail(strict=True, reason="not reproduced on the tiny profile: with 01's PRM, particle filtering levels off "
                   "at the PRM's own ceiling from N = 8 (seeds 0-1 of 2026-12-01: 0.83, 0.84, 0.83, 0.83 at N = 8..64) and "
                   "best-of-N catches up (0.78, 0.83, 0.85, 0.84); with the exact oracle as scorer SMC reaches 0.99-1.0")
def test_04_with_the_trained_prm_smc_rises_up_to_64_and_beats_best_of_n_there():
    smc, bon = history("04", "acc/smc/prm"), history("04", "acc/best_of_n/prm")
    assert smc[64] > smc[16] > smc[4], smc
    assert smc[32] > bon[32] and smc[64] > bon[64], (smc, bon)


def arm_histories(number: str, key: str) -> dict[str, dict[int, float]]:
    """``{arm (nested run name): {step: value}}`` of ``key`` for the nested runs of notebook ``number``."""
    c = tracking.client()
    parent = c.get_run(finished_run(number))
    arms = c.search_runs([parent.info.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    return {a.info.run_name.split("/", 1)[1]: {m.step: m.value for m in c.get_metric_history(a.info.run_id, key)}
            for a in arms}


def test_02_the_oracle_meters_see_no_hacking_with_a_prm_that_ranks():
    """With 01's PRM (within-problem AUROC 0.90) no PRM arm is hacked in 40 steps: the share of steps the
    oracle calls wrong falls with sum-form as with min-form (seed 0 of 2026-12-01: 0.23 to 0.21 and 0.20)
    and with the oracle as the PRM. (The head-readout PRM of 0.56 was hacked: sum-form's wrong-step share
    rose from 0.23 while its accuracy fell from 0.35 to 0.08.)"""
    wrong = arm_histories("02", "oracle/wrong_step_share")
    for seed in (0, 1):
        for arm in ("prm-sum", "prm-min", "oracle-min"):
            w = wrong[f"{arm}-seed{seed}"]
            assert w[max(w)] <= w[0] + 0.02, (arm, seed, w)


@pytest.mark.xfail(strict=True, reason="not reproduced with a PRM that ranks: seed 0 of 2026-12-01, sum-form went from "
                   "0.35 to 0.47 in 40 steps (verifiable-only 0.47, min-form 0.51); it collapsed (to 0.08) only with the "
                   "head-readout PRM that could not rank solutions of one problem")
def test_02_headline_sum_form_collapses():
    m = metrics_of("02")
    assert m["headline/sum_form_collapses"] == 1.0, m


def test_02_headline_min_form_trains_stably():
    """Min-form on 01's PRM does not fall (seed 0 of 2026-12-01: 0.35 to 0.51)."""
    m = metrics_of("02")
    assert m["headline/min_form_stable"] == 1.0, m


@pytest.mark.xfail(strict=True, reason="not reproduced on the tiny profile: min-form + 10% verifiable ends below min-form "
                   "alone (seed 0 of 2026-12-01: 0.48 against 0.51; verifiable-only 0.47); one seed of 100 eval problems x 4 "
                   "samples has a standard error of about 0.025, so these arms are not told apart")
def test_02_headline_min_form_with_verifiable_rewards_is_the_best_arm():
    m = metrics_of("02")
    assert m["headline/min_vr_best"] == 1.0, m


def test_02_headline_min_form_reaches_verifiable_accuracy_in_fewer_steps():
    """Min-form reaches the verifiable arm's final accuracy before that arm does (seed 0 of 2026-12-01:
    step 30 against 40)."""
    m = metrics_of("02")
    assert m["headline/min_form_faster"] == 1.0, m


@pytest.mark.xfail(strict=True, reason="not reproduced on the tiny profile: seeds 0-1 of 2026-12-01 (prm_lr 1e-3, update "
                   "'before'), outcome-only RLOO went from 0.35/0.40 to 0.48/0.52 in 40 steps; PRIME ended at 0.51/0.51, "
                   "reaching RLOO's final accuracy with as many rollouts on seed 0 and never on seed 1 (mean ratio 0.5). "
                   "On the policy's fresh rollouts its implicit PRM ranks a prompt's responses at AUROC 0.56 on average: "
                   "little signal beyond the outcome's. At the paper's ratio of learning rates (2e-4) the policy exploited "
                   "it (AUROC below 0.5) and PRIME ended below RLOO (0.44 against 0.48)")
def test_03_headline_prime_learns_faster_than_outcome_rloo():
    """PRIME reaches outcome-only RLOO's final accuracy with fewer rollouts, on average over two seeds."""
    m = metrics_of("03")
    assert m["headline/sample_efficiency"] > 1.0, m


def test_03_prime_is_not_worse_than_outcome_rloo():
    """What does hold (seeds 0-1 of 2026-12-01: final gain +0.012, seeds -0.005 to +0.030): PRIME's dense
    rewards do not cost accuracy, and its implicit PRM ranks the policy's fresh rollouts above chance
    (within-group AUROC 0.56 on average over the run) rather than being exploited."""
    m = metrics_of("03")
    assert m["headline/final_gain"] >= -0.03, m
    assert m["headline/implicit_prm_rollout_auroc"] > 0.5, m


def test_03_the_implicit_prm_learns_to_rank_solutions():
    """Trained from outcomes only, the implicit PRM ranks solutions of one problem better than chance
    (seed 0 of 2026-12-01: within-problem AUROC 0.59 on the SFT policy's pool; 01's PRM: 0.89)."""
    m = metrics_of("03")
    assert m["eval/implicit_prm/within_problem_auroc"] > 0.55, m
