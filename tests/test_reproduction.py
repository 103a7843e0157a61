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


def test_01_process_supervision_beats_outcome_supervision_at_the_step_level():
    """A PRM ranks steps far better than an ORM with the same backbone, and a Monte Carlo-labelled PRM
    comes close to the oracle-labelled one (step AUROC, and best-of-16)."""
    m = metrics_of("01")
    assert m["eval/PRM-mc-hard/step_auroc"] >= m["eval/ORM/step_auroc"] + 0.1, m
    assert abs(m["eval/PRM-oracle/step_auroc"] - m["eval/PRM-mc-hard/step_auroc"]) <= 0.05, m
    assert abs(m["headline/PRM-mc-hard_gap_to_oracle"]) <= 0.05, m


@pytest.mark.xfail(strict=True, reason="not reproduced on the tiny profile: the tiny PRM's best-of-16 falls below "
                   "majority vote (and below a random pick) because it prefers short solutions that skip an operation")
def test_01_headline_prm_best_of_16_beats_majority():
    m = metrics_of("01")
    assert m["headline/prm_best_of_n"] > m["headline/majority"], m


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


@pytest.mark.xfail(strict=True, reason="not reproduced on the tiny profile: guided by the trained tiny PRM every "
                   "search method gets worse as N grows (the PRM prefers solutions that skip an operation)")
def test_04_headline_with_the_trained_prm_smc_at_16_beats_majority():
    m = metrics_of("04")
    assert history("04", "acc/smc/prm")[16] > history("04", "acc/majority")[16], m


def arm_histories(number: str, key: str) -> dict[str, dict[int, float]]:
    """``{arm (nested run name): {step: value}}`` of ``key`` for the nested runs of notebook ``number``."""
    c = tracking.client()
    parent = c.get_run(finished_run(number))
    arms = c.search_runs([parent.info.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    return {a.info.run_name.split("/", 1)[1]: {m.step: m.value for m in c.get_metric_history(a.info.run_id, key)}
            for a in arms}


def test_02_the_oracle_meters_see_the_hacking():
    """Sum-form credit on the trained PRM is hacked, and the meters show how: the share of steps the oracle
    calls wrong rises by more than 0.1 while the PRM's mean reward rises too; with the oracle as the PRM
    (no PRM error to exploit) the wrong-step share does not rise."""
    wrong, prm = arm_histories("02", "oracle/wrong_step_share"), arm_histories("02", "reward/prm_mean")
    for seed in (0, 1):
        w, p, o = wrong[f"prm-sum-seed{seed}"], prm[f"prm-sum-seed{seed}"], wrong[f"oracle-min-seed{seed}"]
        last = max(w)
        assert w[last] > w[0] + 0.1 and p[last] > p[0], (w, p)
        assert o[max(o)] < o[0] + 0.05, o


def test_02_headline_sum_form_collapses():
    m = metrics_of("02")
    assert m["headline/sum_form_collapses"] == 1.0, m


PRM_HACKED = ("with the tiny PRM of 01 (within-problem AUROC about 0.56, it rewards solutions that skip an operation) "
              "min-form is hacked as sum-form is: seed 0 of 2026-12-01 fell from 0.35 to 0.06 (sum-form to 0.08) while "
              "the oracle's share of skipped steps rose from 0.05 to 0.34; with the oracle as the PRM min-form reached "
              "0.49 against sum-form's 0.46 and verifiable-only's 0.47. A PRM that ranks (issue 10) is what is missing")


@pytest.mark.xfail(strict=True, reason=PRM_HACKED)
def test_02_headline_min_form_trains_stably():
    m = metrics_of("02")
    assert m["headline/min_form_stable"] == 1.0, m


@pytest.mark.xfail(strict=True, reason="min-form + 10% verifiable stays stable but ends below verifiable-only (seed 0: "
                   "0.41 against 0.47): " + PRM_HACKED)
def test_02_headline_min_form_with_verifiable_rewards_is_the_best_arm():
    m = metrics_of("02")
    assert m["headline/min_vr_best"] == 1.0, m


@pytest.mark.xfail(strict=True, reason=PRM_HACKED)
def test_02_headline_min_form_reaches_verifiable_accuracy_in_fewer_steps():
    m = metrics_of("02")
    assert m["headline/min_form_faster"] == 1.0, m


@pytest.mark.xfail(strict=True, reason="not reproduced on the tiny profile: seed 0 of 2026-12-01, outcome-only RLOO went "
                   "from 0.35 to 0.48 in 40 steps (10,240 rollouts) while PRIME peaked at 0.41 and ended at 0.38; its "
                   "implicit PRM learned to rank solutions (within-problem AUROC 0.73, above 01's PRM at 0.56) but not "
                   "to locate the wrong step (arithmetic errors: step AUROC 0.47), so its dense rewards mostly add noise")
def test_03_headline_prime_learns_faster_than_outcome_rloo():
    """PRIME reaches outcome-only RLOO's final accuracy with fewer rollouts, on average over two seeds."""
    m = metrics_of("03")
    assert m["headline/sample_efficiency"] > 1.0, m


def test_03_the_implicit_prm_learns_to_rank_solutions():
    """Trained from outcomes only, the implicit PRM ranks solutions of one problem better than chance."""
    m = metrics_of("03")
    assert m["eval/implicit_prm/within_problem_auroc"] > 0.55, m
