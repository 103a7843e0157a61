"""The generic SMC core checked against exact answers: a small discrete HMM solved by the forward
(-backward) algorithm, the unbiasedness of every resampling scheme, and the bookkeeping contracts
(finished particles, tempering, Particle Gibbs reference, config validation)."""

from __future__ import annotations

import numpy as np
import pytest

from prmlab.decoding.resampling import (
    RESAMPLING_SCHEMES,
    normalize_log_weights,
    offspring_counts,
    resample,
)
from prmlab.decoding.smc import (
    SMCConfig,
    SMCModel,
    lineage,
    particle_gibbs,
    run_smc,
)
from prmlab.metrics import ess

# ---- a 3-state, 4-symbol HMM: x_0 ~ PI0, x_t ~ A[x_{t-1}], y_t ~ B[x_t] for t = 1..T ----------------

PI0 = np.array([0.5, 0.3, 0.2])
A = np.array([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3], [0.2, 0.3, 0.5]])
B = np.array([[0.6, 0.2, 0.1, 0.1], [0.1, 0.5, 0.3, 0.1], [0.1, 0.1, 0.2, 0.6]])
OBS = np.array([0, 1, 3, 3, 2, 0, 1, 3])
T = len(OBS)
LOG_B = np.log(B)


def forward_backward():
    """Exact log p(y_{1:T}), filtering p(x_T | y_{1:T}) and smoothing p(x_1 | y_{1:T})."""
    alphas = [PI0]
    for y in OBS:
        alphas.append((alphas[-1] @ A) * B[:, y])
    z = alphas[-1].sum()
    beta = np.ones(3)
    for y in OBS[:0:-1]:  # beta_t for t = T-1 down to 1
        beta = A @ (B[:, y] * beta)
    smooth_x1 = alphas[1] * beta / z
    return np.log(z), alphas[-1] / z, smooth_x1


LOG_Z, POST_XT, SMOOTH_X1 = forward_backward()


def _sample_rows(cdf_rows: np.ndarray, u: np.ndarray) -> np.ndarray:
    return (u[:, None] >= cdf_rows).sum(1)


CDF0 = np.cumsum(PI0) / PI0.sum()
CDF_A = np.cumsum(A, 1) / A.sum(1, keepdims=True)


def hmm_model() -> SMCModel:
    """Bootstrap filter: particles are hidden states (int array), extend samples the transition,
    log_potential is the log emission of observation t (new evidence only: "incremental")."""

    def extend(x, alive, rng):
        u = rng.random(len(x))
        new = x.copy()
        new[alive] = _sample_rows(CDF_A[x[alive]], u[alive])
        return new

    return SMCModel(
        init=lambda n, rng: _sample_rows(np.tile(CDF0, (n, 1)), rng.random(n)),
        extend=extend,
        log_potential=lambda x, t: LOG_B[x, OBS[t - 1]],
    )


def hmm_prefix_model() -> SMCModel:
    """The same HMM, but a particle is [state, steps taken, log p(y_{1:t} | x_{1:t})] and the potential is
    that cumulative prefix score (as a PRM scores a whole partial solution); finished after T steps."""

    def init(n, rng):
        p = np.zeros((n, 3))
        p[:, 0] = _sample_rows(np.tile(CDF0, (n, 1)), rng.random(n))
        return p

    def extend(p, alive, rng):
        u = rng.random(len(p))
        new = p.copy()
        x = _sample_rows(CDF_A[p[alive, 0].astype(int)], u[alive])
        steps = p[alive, 1].astype(int)
        new[alive, 0] = x
        new[alive, 1] = steps + 1
        new[alive, 2] += LOG_B[x, OBS[steps]]
        return new

    return SMCModel(init=init, extend=extend, log_potential=lambda p, t: p[:, 2],
                    is_finished=lambda p: p[:, 1] >= T)


def posterior_xt(result) -> np.ndarray:
    return np.bincount(result.particles, weights=result.weights, minlength=3)


# ---- resampling primitives ----------------------------------------------------------------------------


def test_ess_and_stable_normalization():
    assert ess(np.ones(10)) == pytest.approx(10.0)
    assert ess(np.eye(10)[3]) == pytest.approx(1.0)
    assert ess(normalize_log_weights(np.full(7, -1e4))[0]) == pytest.approx(7.0)  # exp(-1e4) underflows alone
    w, log_sum = normalize_log_weights(np.array([-1e4, -1e4 - np.log(3.0), -np.inf]))
    np.testing.assert_allclose(w, [0.75, 0.25, 0.0])
    assert log_sum == pytest.approx(-1e4 + np.log(4 / 3))
    with pytest.raises(ValueError, match="all log-weights are -inf"):
        normalize_log_weights(np.full(3, -np.inf))


@pytest.mark.parametrize("scheme", RESAMPLING_SCHEMES)
def test_resampling_is_unbiased(scheme):
    rng = np.random.default_rng(1)
    w = np.array([0.02, 0.3, 0.05, 0.13, 0.0, 0.25, 0.17, 0.08])
    n, draws = len(w), 20_000
    counts = np.stack([offspring_counts(resample(w, n, scheme, rng), n) for _ in range(draws)])
    assert (counts.sum(1) == n).all() and counts[:, 4].max() == 0  # weight 0 is never drawn
    se = counts.std(0) / np.sqrt(draws)
    np.testing.assert_array_less(np.abs(counts.mean(0) - n * w), 4 * se + 1e-9)
    assert np.abs(counts.mean(0) - n * w).max() < 0.03


def test_low_variance_schemes_beat_multinomial():
    rng = np.random.default_rng(2)
    w = rng.dirichlet(np.ones(8))
    var = {
        s: np.stack([offspring_counts(resample(w, 8, s, rng), 8) for _ in range(5000)]).var(0).sum()
        for s in RESAMPLING_SCHEMES
    }
    for s in ("systematic", "stratified", "residual"):
        assert var[s] < var["multinomial"], var


def test_resample_returns_sorted_int64_indices_and_rejects_unknown_scheme():
    idx = resample(np.array([0.1, 0.6, 0.3]), 5, "multinomial", np.random.default_rng(0))
    assert idx.dtype == np.int64 and (np.diff(idx) >= 0).all()
    with pytest.raises(ValueError, match="multinomial, systematic, stratified, residual"):
        resample(np.ones(3), 3, "bogus", np.random.default_rng(0))


# ---- the bootstrap particle filter against the forward algorithm ------------------------------------


@pytest.mark.parametrize("ess_threshold", [1.0, 0.5])
def test_bootstrap_filter_converges_to_exact_posterior(ess_threshold):
    seeds = 16
    post_rmse, logz_rmse = [], []
    for n in (100, 1000, 10_000):
        cfg = SMCConfig(n_particles=n, ess_threshold=ess_threshold, max_steps=T)
        runs = [run_smc(hmm_model(), cfg, np.random.default_rng(s)) for s in range(seeds)]
        post = np.stack([posterior_xt(r) for r in runs])
        logz = np.array([r.log_marginal for r in runs])
        post_rmse.append(np.sqrt(((post - POST_XT) ** 2).sum(1).mean()))
        logz_rmse.append(np.sqrt(((logz - LOG_Z) ** 2).mean()))
    # error ~ 1/sqrt(N): each 10x in N should shrink it about 3.2x; ask for a clear decrease
    assert post_rmse[0] > post_rmse[1] > post_rmse[2] and post_rmse[2] < post_rmse[0] / 4, post_rmse
    assert logz_rmse[0] > logz_rmse[1] > logz_rmse[2] and logz_rmse[2] < logz_rmse[0] / 4, logz_rmse
    # at the largest N the mean over seeds is within a few Monte Carlo standard errors of the truth
    se = post.std(0) / np.sqrt(seeds)
    np.testing.assert_array_less(np.abs(post.mean(0) - POST_XT), 4 * se)
    assert abs(logz.mean() - LOG_Z) < 4 * logz.std() / np.sqrt(seeds) + 1e-3
    assert post_rmse[2] < 0.015 and logz_rmse[2] < 0.06
    print(f"N=100,1000,10000 ess_threshold={ess_threshold}: posterior RMSE {np.round(post_rmse, 4)}, "
          f"log Z RMSE {np.round(logz_rmse, 4)}")


@pytest.mark.parametrize("ess_threshold", [1.0, 0.5])
@pytest.mark.parametrize("scheme", RESAMPLING_SCHEMES)
def test_marginal_likelihood_estimate_is_unbiased(scheme, ess_threshold):
    seeds = 300
    cfg = SMCConfig(n_particles=50, resampling=scheme, ess_threshold=ess_threshold, max_steps=T)
    ratio = np.exp([run_smc(hmm_model(), cfg, np.random.default_rng(s)).log_marginal - LOG_Z for s in range(seeds)])
    se = ratio.std() / np.sqrt(seeds)
    assert abs(ratio.mean() - 1.0) < max(3 * se, 0.01), (ratio.mean(), se)


def test_ratio_weighting_is_the_right_one_for_prefix_scores():
    """A cumulative prefix potential with "ratio" weighting reproduces the per-step filter exactly;
    summing it "incrementally" counts early evidence again at every step and is far off."""
    for threshold in (1.0, 0.5):
        step = run_smc(hmm_model(), SMCConfig(n_particles=500, ess_threshold=threshold, max_steps=T),
                       np.random.default_rng(3))
        prefix = run_smc(hmm_prefix_model(),
                         SMCConfig(n_particles=500, ess_threshold=threshold, weighting="ratio", max_steps=50),
                         np.random.default_rng(3))
        assert prefix.steps == T and prefix.finished.all()  # stopped by is_finished, not max_steps
        np.testing.assert_array_equal(prefix.particles[:, 0], step.particles)
        np.testing.assert_allclose(prefix.log_weights, step.log_weights, atol=1e-9)
        assert prefix.log_marginal == pytest.approx(step.log_marginal, abs=1e-9)
    wrong = run_smc(hmm_prefix_model(), SMCConfig(n_particles=500, max_steps=50), np.random.default_rng(3))
    assert abs(wrong.log_marginal - LOG_Z) > 5 * abs(step.log_marginal - LOG_Z) + 1.0


def test_ratio_weights_telescope_to_the_last_tempered_score():
    cfg = SMCConfig(n_particles=64, ess_threshold=0.0, weighting="ratio", schedule=[4.0, 2.0, 1.0, 0.5], max_steps=50)
    res = run_smc(hmm_prefix_model(), cfg, np.random.default_rng(0))
    expected, _ = normalize_log_weights(res.particles[:, 2] / 0.5)
    np.testing.assert_allclose(res.weights, expected, atol=1e-12)


# ---- Puri et al. "current" weighting --------------------------------------------------------------


def test_current_weighting_uses_the_current_score_only():
    cfg = SMCConfig(n_particles=32, ess_threshold=0.0, weighting="current", temperature=2.0, max_steps=3)
    res = run_smc(hmm_model(), cfg, np.random.default_rng(0))
    for h in res.history:  # softmax(log G_t / tau) of this step's scores, nothing carried over
        np.testing.assert_allclose(np.exp(h.log_weights), normalize_log_weights(h.log_potentials / 2.0)[0], atol=1e-12)
    assert np.isnan(res.log_marginal)


def test_current_equals_incremental_when_resampling_every_step():
    runs = {
        w: run_smc(hmm_model(), SMCConfig(n_particles=200, weighting=w, max_steps=T), np.random.default_rng(5))
        for w in ("current", "incremental")
    }
    np.testing.assert_array_equal(runs["current"].particles, runs["incremental"].particles)
    np.testing.assert_allclose(runs["current"].log_weights, runs["incremental"].log_weights, atol=1e-12)


# ---- finished particles ---------------------------------------------------------------------------


def staggered_model(step1_log_g: dict[int, float], prefix: bool = False) -> SMCModel:
    """List particles (id, steps taken, length) with lengths 1, 2, 3, 1, 2, 3: they finish at
    different steps. extend fails loudly if asked to advance a finished particle. The potential is
    ``step1_log_g[id]`` at step 1 and then 0 (new evidence), or that value at every step (``prefix``)."""

    def extend(particles, alive, rng):
        out = list(particles)
        for i in np.flatnonzero(alive):
            pid, steps, length = particles[i]
            assert steps < length, f"finished particle {pid} was extended"
            out[i] = (pid, steps + 1, length)
        return out

    return SMCModel(
        init=lambda n, rng: [(i, 0, 1 + i % 3) for i in range(n)],
        extend=extend,
        log_potential=lambda ps, t: np.array([step1_log_g[p[0]] if t == 1 or prefix else 0.0 for p in ps]),
        is_finished=lambda ps: np.array([p[1] >= p[2] for p in ps]),
    )


def test_finished_particles_keep_their_weight_without_resampling():
    g = {i: -0.5 * i for i in range(6)}
    for weighting in ("incremental", "ratio", "current"):
        model = staggered_model(g, prefix=weighting != "incremental")
        res = run_smc(model, SMCConfig(n_particles=6, ess_threshold=0.0, weighting=weighting), np.random.default_rng(0))
        assert res.steps == 3 and res.finished.all()
        np.testing.assert_array_equal(res.history[1].alive, [0, 1, 1, 0, 1, 1])
        np.testing.assert_array_equal(res.history[2].alive, [0, 0, 1, 0, 0, 1])
        np.testing.assert_allclose(res.history[-1].log_potentials[[0, 3]], [0.0, -1.5])  # their last scores
        for h in res.history[1:]:  # alive particles gain no new evidence, so no weight may move
            np.testing.assert_allclose(h.log_weights, res.history[0].log_weights, atol=1e-12)
        np.testing.assert_allclose(res.weights, normalize_log_weights(np.array([-0.5 * i for i in range(6)]))[0])


def test_finished_particles_take_part_in_resampling():
    g = {0: 0.0, 1: -1.0, 2: -1.0, 3: -20.0, 4: -1.0, 5: -1.0}  # 0 and 3 finish after step 1
    res = run_smc(staggered_model(g), SMCConfig(n_particles=6, resampling="systematic"), np.random.default_rng(0))
    step2 = res.history[1]
    counts = offspring_counts(step2.ancestors, 6)
    assert step2.resampled and counts[0] >= 2 and counts[3] == 0  # duplicated / dropped
    copies = np.flatnonzero(step2.ancestors == 0)
    assert not step2.alive[copies].any()  # the copies are finished: not extended
    assert all(res.particles[i] == (0, 1, 1) for i in copies)


# ---- tempering ------------------------------------------------------------------------------------


def test_high_temperature_flattens_weights():
    ess_at = {
        tau: run_smc(hmm_model(), SMCConfig(n_particles=500, temperature=tau, ess_threshold=0.0, max_steps=T),
                     np.random.default_rng(0)).history[-1].ess
        for tau in (0.2, 1.0, 1e8)
    }
    assert ess_at[0.2] < ess_at[1.0] < ess_at[1e8] and ess_at[1e8] > 500 * (1 - 1e-6)


@pytest.mark.parametrize("schedule", [[4.0, 2.0, 1.0], lambda t: 1.0 / t])
def test_annealing_schedule_is_applied_per_step(schedule):
    cfg = SMCConfig(n_particles=50, ess_threshold=0.0, schedule=schedule, max_steps=5)
    res = run_smc(hmm_model(), cfg, np.random.default_rng(0))
    taus = [4.0, 2.0, 1.0, 1.0, 1.0] if isinstance(schedule, list) else [1.0 / t for t in range(1, 6)]
    assert [h.temperature for h in res.history] == taus
    # incremental, never resampled: log w_T = sum_t log G_t / tau_t
    expected = sum(h.log_potentials / tau for h, tau in zip(res.history, taus))
    np.testing.assert_allclose(res.log_weights, expected - np.log(np.exp(expected).sum()), atol=1e-10)


def test_recorded_ess_and_resampling_decision_use_the_one_ess():
    """Each step's ESS is `prmlab.metrics.ess` of its weights (against the textbook 1 / sum w^2 as well),
    and resampling happens before a step exactly when the previous ESS fell under threshold * N."""
    n, threshold = 40, 0.6
    res = run_smc(hmm_model(), SMCConfig(n_particles=n, ess_threshold=threshold, max_steps=T), np.random.default_rng(1))
    for h in res.history:
        w = np.exp(h.log_weights)
        assert h.ess == ess(w) == pytest.approx(1.0 / np.sum(w**2), rel=1e-12)
    decisions = [h.resampled for h in res.history[1:]]
    assert decisions == [h.ess < threshold * n for h in res.history[:-1]]
    assert any(decisions) and not all(decisions)  # the threshold really decided


# ---- Particle Gibbs -------------------------------------------------------------------------------


def test_particle_gibbs_keeps_the_reference_and_targets_the_posterior():
    # ESS-triggered resampling keeps early states diverse, so x_1 mixes far faster than resampling every step
    sweeps, burn_in = 500, 50
    cfg = SMCConfig(n_particles=32, ess_threshold=0.5, max_steps=T)
    results = particle_gibbs(hmm_model(), cfg, sweeps, np.random.default_rng(0))
    assert len(results) == sweeps and results[0].reference is None
    for res in results[1:]:
        ref = res.reference
        assert (lineage(res, 0) == 0).all()  # slot 0 descends from slot 0 at every step
        assert all(h.ancestors[0] == 0 for h in res.history)
        assert res.initial_particles[0] == ref.states[0][0]
        assert all(h.particles[0] == ref.states[t][0] for t, h in enumerate(res.history, start=1))
    # final-state posterior (weighted) and the smoothing marginal of x_1 along reference trajectories
    post = np.mean([posterior_xt(r) for r in results[burn_in:]], axis=0)
    x1 = np.bincount([r.reference.states[1][0] for r in results[burn_in:]], minlength=3) / (sweeps - burn_in)
    assert np.abs(post - POST_XT).max() < 0.02, (post, POST_XT)  # seeds 0-7 gave 0.001-0.011
    assert np.abs(x1 - SMOOTH_X1).max() < 0.05, (x1, SMOOTH_X1)  # seeds 0-7 gave 0.004-0.036


def test_particle_gibbs_with_list_particles_that_finish_early():
    g = {0: 0.0, 1: -0.3, 2: -0.6, 3: -0.9, 4: -1.2, 5: -1.5}
    results = particle_gibbs(staggered_model(g, prefix=True), SMCConfig(n_particles=6, weighting="ratio"), 30,
                             np.random.default_rng(0))
    for res in results[1:]:
        ref = res.reference
        last = len(ref.states) - 1  # a finished reference simply stays in slot 0
        assert all(h.ancestors[0] == 0 for h in res.history)
        assert all(h.particles[0] == ref.states[min(t, last)][0] for t, h in enumerate(res.history, start=1))


# ---- validation -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"resampling": "bogus"}, "multinomial, systematic, stratified, residual"),
        ({"ess_threshold": 1.5}, r"\[0, 1\]"),
        ({"ess_threshold": -0.1}, r"\[0, 1\]"),
        ({"temperature": 0.0}, "> 0"),
        ({"temperature": -1.0}, "> 0"),
        ({"schedule": [1.0, 0.0]}, "> 0"),
        ({"weighting": "cumulative"}, "incremental, ratio, current"),
        ({"n_particles": 0}, ">= 1"),
        ({"max_steps": 0}, ">= 1"),
    ],
)
def test_bad_config_raises(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SMCConfig(**kwargs)


def test_bad_schedule_value_raises_at_run_time():
    with pytest.raises(ValueError, match="> 0"):
        run_smc(hmm_model(), SMCConfig(schedule=lambda t: 1.0 - t, max_steps=3))


def test_keep_in_place_keeps_survivors_in_their_slots():
    from prmlab.decoding.resampling import keep_in_place

    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(1, 12))
        anc = np.sort(rng.integers(0, n, size=n))
        out = keep_in_place(anc)
        assert sorted(out.tolist()) == sorted(anc.tolist())  # the same offspring counts
        for j in set(anc.tolist()):
            assert out[j] == j  # every survivor stays put
