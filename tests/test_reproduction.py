"""Reproduction checks on the tiny profile (minutes each): `make test-slow` / `pytest -m slow`.

Each runs a notebook exactly as a user would (`prmlab run NN`, tiny profile) into one temporary MLflow
store shared by the module (01 uses the policy of 00, 04 the PRM of 01) and checks the numbers the
issues ask for. Headlines that the tiny profile does not reproduce are kept as strict xfails that expect an
AssertionError (a renamed metric's KeyError fails them): they document the negative result with the measured
numbers, and they fail loudly the day they start to hold (update the README then). Thresholds are the
papers' claims or targets set in the issues, not a margin under one seed's measurement; a difference between
RL arms holds only beyond two standard errors over at least three seeds (`prmlab.headlines.holds`).
"""

import os
import subprocess
import sys

import pytest

from prmlab import tracking
from prmlab.headlines import holds

pytestmark = pytest.mark.slow


def run_notebook(number: str, *args: str) -> str:
    res = subprocess.run([sys.executable, "-m", "prmlab.cli", "run", number, *args], capture_output=True, text=True,
                         env=os.environ.copy())
    assert res.returncode == 0, res.stdout + res.stderr
    return next(ln.split(": ")[1] for ln in res.stdout.splitlines() if ln.startswith("run_id: "))


_runs: dict[str, str] = {}
# The RL headlines are judged on three seeds, the fewest a claim needs (the notebooks' tiny default runs one).
ARGS = {"02": ("-p", "repetitions", "3"), "03": ("-p", "repetitions", "3")}


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
    """SFT stays within the notebook's budget (2000 steps: 171 s on 2 idle cores; 5 minutes allow for
    the machine's swings); pass@1 in [35%, 75%]; pass@16 at least 90%."""
    m = metrics_of("00")
    assert m["perf/train_seconds"] <= 300, m["perf/train_seconds"]
    assert 0.35 <= m["eval/pass_at_1"] <= 0.75, m["eval/pass_at_1"]
    assert m["eval/pass_at_16"] >= 0.90, m["eval/pass_at_16"]


def test_00_the_policy_errs_confidently():
    """The testbed's confident errors (issue 19's targets): greedy decoding at least 0.15 below pass@16,
    at least 30% of the erring samples gave their first wrong token probability >= 0.5, and the policy's raw
    likelihood ranks solutions within a problem at no more than 0.70 where a misconception applies.
    (Seed 0 of 2026-12-02: greedy 0.575 against pass@16 0.982; 52% confident; 0.434.)"""
    m = metrics_of("00")
    assert m["eval/greedy_accuracy"] <= m["eval/pass_at_16"] - 0.15, m
    assert m["selfcert/confident_share"] >= 0.30, m
    assert m["selfcert/likelihood_within_auroc/misconception_problems"] <= 0.70, m
    assert m["selfcert/confident_share/misconception"] > m["selfcert/confident_share/arithmetic"], m


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
    """The PRM's targets on the eval split (200 problems x 64 samples; issue 19): within-problem AUROC at
    least 0.85 overall and 0.80 where a misconception applies, each at least 0.10 above the policy's own
    likelihood; step AUROC of ok steps against each kind of first error, misconceptions included, at least
    0.85; best-of-16 at least 0.05 above majority vote, the likelihood's best-of-16 and greedy decoding;
    PRM-weighted majority above majority at 16 and 64; the Monte Carlo PRM within 0.03 of the oracle one at
    best-of-16 and within 0.05 of it in step AUROC ("Monte Carlo labels approach oracle labels").
    (Seed 0 of 2026-12-02: 0.964 / 0.949 against 0.713 / 0.438; kinds 0.976-1.0; best-of-16 0.933 against
    majority 0.646, likelihood 0.586, greedy 0.575.)"""
    m = metrics_of("01")
    for name in ("PRM-oracle", "PRM-mc-hard"):
        assert m[f"eval/{name}/within_problem_auroc"] >= 0.85, m
        assert m[f"eval/{name}/within_problem_auroc/misconception_problems"] >= 0.80, m
        for scope in ("within_problem_auroc", "within_problem_auroc/misconception_problems"):
            assert m[f"eval/{name}/{scope}"] >= m[f"eval/likelihood/{scope}"] + 0.10, (name, scope, m)
        for kind in ("arithmetic", "misconception", "carry", "skipped", "extra"):
            assert m[f"eval/{name}/step_auroc/{kind}"] >= 0.85, (name, kind, m)
    for rival in ("majority", "likelihood_best_of_n", "greedy"):
        assert m["headline/prm_best_of_n"] >= m[f"headline/{rival}"] + 0.05, (rival, m)
    weighted, majority = history("01", "bon/PRM-mc-hard-weighted_majority/min"), history("01", "bon/majority_vote")
    assert weighted[16] > majority[16] and weighted[64] > majority[64], (weighted, majority)
    assert abs(m["headline/PRM-mc-hard_gap_to_oracle"]) <= 0.03, m
    assert abs(m["eval/PRM-oracle/step_auroc"] - m["eval/PRM-mc-hard/step_auroc"]) <= 0.05, m
    assert m["label/tokens"] > 0 and m["perf/label_seconds"] > 0  # the labelling cost is reported


@pytest.mark.xfail(strict=True, raises=AssertionError, reason="not reproduced: the PRMs' clean backbone already ranks "
                   "with its likelihood before any label (best-of-16 0.928 untrained against 0.933 trained, "
                   "within-problem AUROC 0.961 against 0.964; seed 0 of 2026-12-02)")
def test_01_the_step_labels_add_to_the_readout_before_training():
    """Training on step labels lifts the PRM above its own readout before training by at least 0.05 at
    best-of-16 (a verifier judged against the baselines that could embarrass it)."""
    m = metrics_of("01")
    assert m["headline/prm_best_of_n"] >= m["headline/untrained_best_of_n"] + 0.05, m


@pytest.mark.xfail(strict=True, raises=AssertionError, reason="not reproduced with the likelihood readout: PRM and ORM "
                   "both read the clean backbone's token likelihoods, so the ORM ranks steps as well (step AUROC on "
                   "misconception errors 0.981 against 0.973, pooled 0.99 against 0.99, seed 0 of 2026-12-02). On a dev "
                   "split the head readout on a fine-tuned backbone separates them (misconceptions 0.862 against 0.619) "
                   "but ranks solutions at only 0.68")
def test_01_process_supervision_locates_misconceptions_better_than_outcome_supervision():
    """The step-labelled PRM is above the ORM by at least 0.05 step AUROC on misconception errors (the
    claim of process supervision: it locates the errors that outcome supervision does not)."""
    m = metrics_of("01")
    assert m["eval/PRM-mc-hard/step_auroc/misconception"] >= m["eval/ORM/step_auroc/misconception"] + 0.05, m


@pytest.mark.xfail(strict=True, raises=AssertionError, reason="not reproduced with the likelihood readout: PRM and ORM "
                   "both read the clean backbone's token likelihoods, so the ORM ranks steps as well (step AUROC 0.989 "
                   "against 0.985, seed 0 of 2026-12-02); with the head readout the PRM was ahead by more than 0.1")
def test_01_process_supervision_beats_outcome_supervision_at_the_step_level():
    """A PRM ranks steps far better than an ORM with the same backbone (the claim of process supervision:
    it locates the errors that outcome supervision does not)."""
    m = metrics_of("01")
    assert m["eval/PRM-mc-hard/step_auroc"] >= m["eval/ORM/step_auroc"] + 0.1, m


@pytest.mark.xfail(strict=True, raises=AssertionError,
                   reason="not reproduced at the margins asked, on the confident-errors testbed (seeds 0-1 of "
                   "2026-12-02, 80 problems): with the exact oracle SMC at N = 4 reached 0.913 against best-of-N's 0.819 "
                   "(+0.094 where the check asks +0.1) and beam search's 0.844, and reached the lower target (0.894) "
                   "with N = 3.7 against best-of-N's 6.1: 1.6x fewer solutions where the check asks 2x")
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


def _spends_best_of_n_tokens(method: str) -> None:
    from prmlab.decoding.compare import equal_budget

    bon = history("04", "tokens/best_of_n/oracle")
    tokens = history("04", f"tokens/{method}")
    assert tokens, method
    for n, t in tokens.items():
        assert equal_budget(t, bon[n]), (method, n, t, bon[n])


def test_04_methods_report_equal_budgets():
    """At every N particle filtering and DVTS spend equal budgets: tokens within `compare.EQUAL_TOKENS`
    (1.1x) of best-of-N's (`compare.equal_budget`). (Samples at lower temperatures may be shorter: the
    baselines are compared at equal tokens on the accuracy-against-tokens curves, `study.versus_baselines`.)"""
    for method in ("smc/oracle", "dvts/oracle"):
        _spends_best_of_n_tokens(method)


@pytest.mark.xfail(strict=True, raises=AssertionError,
                   reason="not built: beam search follows search-and-learn's, which refills the beams that finish "
                   "to keep N rows a step, and spends more than best-of-N at large N (seeds 0-1 of 2026-12-02: 1.02x "
                   "at N = 4, 1.08x at 16, 1.22x at 32, 1.55x at 64); its N-for-N comparisons favour it")
def test_04_beam_search_spends_best_of_n_tokens():
    _spends_best_of_n_tokens("beam_search/oracle")


def test_04_with_the_exact_scorer_the_best_search_method_beats_greedy_and_the_sampling_baselines():
    """With the exact step oracle, the best search method at the largest N is ahead of greedy decoding and of the
    best sampling baseline (majority vote at temperatures 1, 0.7, 0.5) at the same tokens, by at least
    0.05 each (the tiny profile's two seeds cannot make it a claim: `headline/oracle/worth_its_tokens`
    needs three)."""
    m = metrics_of("04")
    assert m["headline/oracle/best_search_minus_greedy"] >= 0.05, m
    assert m["headline/oracle/best_search_minus_best_sampling_at_tokens"] >= 0.05, m
    assert "headline/acc/greedy" in m and "headline/likelihood/best_search_minus_greedy" in m


def test_04_with_the_trained_prm_smc_beats_best_of_n_at_small_n_and_majority_at_16():
    """Guided by 01's PRM, particle filtering is ahead of best-of-N at N = 2 and 4 (seeds 0-1 of 2026-12-02:
    0.713 / 0.869 against 0.644 / 0.775) and of majority vote at N = 16 (0.906 against 0.600)."""
    smc, bon, majority = history("04", "acc/smc/prm"), history("04", "acc/best_of_n/prm"), history("04", "acc/majority")
    assert smc[2] > bon[2] + 0.05 and smc[4] > bon[4] + 0.05, (smc, bon)
    assert smc[16] > majority[16], (smc, majority)


@pytest.mark.xfail(strict=True, raises=AssertionError,
                   reason="not reproduced on the tiny profile: with 01's PRM, particle filtering levels off "
                   "at the PRM's own ceiling from N = 8 (seeds 0-1 of 2026-12-02: 0.900, 0.906, 0.913, 0.906 at N = "
                   "8..64) and best-of-N catches up (0.900, 0.931, 0.912, 0.900); with the exact oracle as scorer SMC "
                   "reaches 0.994-1.0")
def test_04_with_the_trained_prm_smc_rises_up_to_the_largest_n_and_beats_best_of_n_there():
    smc, bon = history("04", "acc/smc/prm"), history("04", "acc/best_of_n/prm")
    top = max(smc)
    assert smc[top] > smc[16] > smc[4], smc
    assert smc[top // 2] > bon[top // 2] and smc[top] > bon[top], (smc, bon)


def arm_histories(number: str, key: str) -> dict[str, dict[int, float]]:
    """``{nested run name ("prm-sum · seed 0"): {step: value}}`` of ``key`` for the nested runs of notebook ``number``."""
    c = tracking.client()
    parent = c.get_run(finished_run(number))
    arms = c.search_runs([parent.info.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    return {a.info.run_name: {m.step: m.value for m in c.get_metric_history(a.info.run_id, key)}
            for a in arms}


@pytest.mark.xfail(strict=True, raises=AssertionError, reason="not reproduced with a PRM that ranks: with 01's PRM "
                   "(within-problem AUROC 0.96) the share of steps the oracle calls wrong fell under sum-form "
                   "(-0.069, standard error 0.013) as under min-form (-0.071) and the oracle arms (-0.072), "
                   "seeds 0-2 of 2026-12-02, confident-errors testbed; the head-readout PRM of 0.56 was hacked (2026-12-01: sum-form's wrong-step share rose "
                   "from 0.23 while its accuracy fell from 0.35 to 0.08)")
def test_02_the_oracle_meters_see_the_hacking():
    """Sum-form credit on the trained PRM is hacked, and the meters show how: the share of steps the oracle
    calls wrong rises while the PRM's mean reward rises too; with the oracle as the PRM (no PRM error to
    exploit) the wrong-step share does not rise. The rises are judged by the two-standard-error rule over
    the seeds (`headline/<arm>/wrong_step_rise`: the last 5 RL steps against the first 5), where the check
    before the likelihood readout asked for more than +0.1 on each seed."""
    m = metrics_of("02")
    seeds = m["headline/seeds"]
    assert holds(m["headline/prm-sum/wrong_step_rise"], m["headline/prm-sum/wrong_step_rise_se"], seeds), m
    prm = arm_histories("02", "reward/prm_mean")
    for seed in range(int(seeds)):
        p = prm[f"prm-sum · seed {seed}"]
        assert p[max(p)] > p[0], (seed, p)
    assert not holds(m["headline/oracle-min/wrong_step_rise"], m["headline/oracle-min/wrong_step_rise_se"], seeds), m


@pytest.mark.xfail(strict=True, raises=AssertionError,
                   reason="not reproduced with a PRM that ranks: seeds 0-2 of 2026-12-02, confident-errors testbed, sum-form rose "
                   "by +0.153 (standard error 0.017) to 0.709 sampled and by +0.277 to 0.867 greedy in 40 steps "
                   "(verifiable-only 0.719, min-form 0.708); it collapsed (to 0.08, 2026-12-01) only with the "
                   "head-readout PRM that could not rank solutions of one problem")
def test_02_headline_sum_form_collapses():
    """Sum-form on 01's PRM ends below its start, and its wrong-step share rises, beyond noise over three seeds."""
    m = metrics_of("02")
    assert m["headline/sum_form_collapses"] == 1.0, m


@pytest.mark.xfail(strict=True, raises=AssertionError, reason="not reproduced with a PRM that ranks: the claim is read "
                   "against sum-form's course, and sum-form did not fall (seeds 0-2 of 2026-12-02, confident-errors testbed: both arms end at their best "
                   "evaluation, fall difference 0.000; wrong-step shares -0.069 and -0.071, difference +0.002, "
                   "standard error 0.017), so min-form shows no stability that sum-form lacks")
def test_02_headline_min_form_trains_stably():
    """Min-form trains stably where sum-form does not (PURE): sum-form falls further from its best and gains
    more wrong steps than min-form, beyond noise over three seeds, and min-form does neither."""
    m = metrics_of("02")
    assert m["headline/min_form_stable"] == 1.0, m


@pytest.mark.xfail(strict=True, raises=AssertionError,
                   reason="not reproduced on the tiny profile, within noise: seeds 0-2 of 2026-12-02, confident-errors testbed, "
                   "min-form + 10% verifiable ends at 0.714 against verifiable-only 0.719 (difference -0.005, "
                   "standard error 0.027), min-form 0.708, sum-form 0.709")
def test_02_headline_min_form_with_verifiable_rewards_is_the_best_arm():
    """Min-form + 10% verifiable ends above every other non-oracle arm beyond noise over three seeds, and its
    greedy accuracy rises too."""
    m = metrics_of("02")
    assert m["headline/min_vr_best"] == 1.0, m


@pytest.mark.xfail(strict=True, raises=AssertionError, reason="not reproduced: seeds 0-2 of 2026-12-02, confident-errors testbed, the verifiable arm "
                   "ended at 0.719 (its final accuracy first reached at step 40) and min-form, at 0.708, never reached it "
                   "on 2 of 3 seeds (greedy accuracy rose in every arm now, 0.59 to 0.87-0.93)")
def test_02_headline_min_form_reaches_verifiable_accuracy_in_fewer_steps():
    """Min-form reaches the verifiable arm's final accuracy in fewer RL steps than that arm, on every seed
    and beyond noise over three seeds, and its greedy accuracy rises too."""
    m = metrics_of("02")
    assert m["headline/min_form_faster"] == 1.0, m


@pytest.mark.xfail(strict=True, raises=AssertionError,
                   reason="not reproduced on the tiny profile: seeds 0-2 of 2026-12-02, confident-errors testbed (prm_lr 1e-3, "
                   "update 'before'), outcome-only RLOO went from 0.556 to 0.737 in 40 steps and PRIME to 0.728, never "
                   "reaching RLOO's final accuracy on any of the 3 seeds, although its implicit PRM ranks a prompt's "
                   "fresh responses at AUROC 0.75 on average. (2026-12-01, old task: at the paper's ratio of learning "
                   "rates, 2e-4, the policy exploited it and PRIME ended below RLOO, 0.44 against 0.48)")
def test_03_headline_prime_learns_faster_than_outcome_rloo():
    """PRIME reaches outcome-only RLOO's final accuracy with fewer rollouts, on every seed and beyond noise
    over three seeds, and its greedy accuracy rises too (the paper: 2.5x sample efficiency)."""
    m = metrics_of("03")
    assert m["headline/prime_faster"] == 1.0, m


@pytest.mark.xfail(strict=True, raises=AssertionError, reason="not reproduced on the tiny profile, within noise: "
                   "seeds 0-2 of 2026-12-02, confident-errors testbed, PRIME's final accuracy was -0.008 against RLOO's (seeds -0.010 to -0.007, standard error "
                   "0.019), greedy -0.000 (both 0.930)")
def test_03_headline_prime_ends_above_outcome_rloo():
    """PRIME's final accuracy is above outcome-only RLOO's beyond noise over three seeds, and its greedy
    accuracy rises too (the paper: +6.9 points)."""
    m = metrics_of("03")
    assert m["headline/final_gain_holds"] == 1.0, m


def test_03_prime_is_not_worse_than_outcome_rloo():
    """What does hold (seeds 0-2 of 2026-12-02, confident-errors testbed: final gain -0.008, standard error 0.019): PRIME's dense
    rewards do not cost accuracy (RLOO is not ahead beyond two standard errors), and its implicit PRM ranks
    the policy's fresh rollouts above chance (within-group AUROC 0.75 on average over the run) rather than
    being exploited."""
    m = metrics_of("03")
    assert not holds(-m["headline/final_gain"], m["headline/final_gain_se"], m["headline/seeds"]), m
    assert m["headline/implicit_prm_rollout_auroc"] > 0.5, m


def test_03_the_implicit_prm_learns_to_rank_solutions():
    """Trained from outcomes only, the implicit PRM ranks solutions of one problem better than chance (0.5;
    the PRIME paper gives no figure for it) (seed 0 of 2026-12-02: within-problem AUROC 0.81 on the SFT
    policy's pool, step AUROC on misconception errors 0.95; 01's PRM: 0.96)."""
    m = metrics_of("03")
    assert m["eval/implicit_prm/within_problem_auroc"] > 0.5, m
