"""A generic Sequential Monte Carlo (particle filtering) core that knows nothing about language models.

A state-space model is a handful of plain callables (an `SMCModel`); an LLM binding plugs in with
particles = partial solutions, ``extend`` = sample one reasoning step, ``log_potential`` = PRM score:

``init(n, rng) -> particles``
    ``n`` initial particles (step 0). Any container: the core only touches it through ``select``/``concat``.
``extend(particles, alive, rng) -> particles``
    advance the particles with ``alive[i] = True`` by one step and leave the others as they are. It must
    return new states rather than mutate old ones in place: ``select`` may put the same object in
    several slots and the core keeps earlier steps' particle sets (see ``keep_particles``).
``log_potential(particles, t) -> float array [n]``
    ``log G_t`` of each particle after step ``t`` (t = 1, 2, ...). Only entries of particles extended at
    step ``t`` are read; the others may be anything (e.g. NaN). Values may be -inf (weight 0), not +inf.
``is_finished(particles) -> bool array [n]`` (optional: default never finished)
    finished particles are not extended again; they keep their weight and still take part in resampling.
``select(particles, indices) -> particles`` (optional)
    the particles at ``indices`` (reorder / duplicate, for resampling). Default: lists and tuples by
    comprehension, anything else (numpy or torch arrays) by ``particles[indices]``.
``concat(parts) -> particles`` (optional, Particle Gibbs only)
    join containers in order. Default: lists/tuples, numpy arrays (axis 0), torch tensors (dim 0).

What ``log_potential`` must return depends on ``SMCConfig.weighting`` (the core exponentiates it:
a weight is ``exp(log_potential / tau)``):

``"incremental"`` (standard SMC / Feynman-Kac, Doucet & Johansen)
    ``log G_t`` is the *new* evidence of step ``t`` alone (e.g. the log-likelihood of observation t):
    ``log w_t = log w_{t-1} + log G_t / tau_t``. The target at step t is ``p(x_{1:t}) prod_s G_s``.
``"ratio"`` (twisted SMC, for a potential that scores the *whole prefix*)
    ``log G_t(x_{1:t})`` is a cumulative score of the prefix (log-likelihood so far, or ``log r`` of a PRM
    that estimates whether the prefix is on track): ``log w_t = log w_{t-1} + log G_t / tau_t -
    log G_{t-1} / tau_{t-1}``, so the target at step t is ``p(x_{1:t}) G_t^(1/tau_t)``. Adding
    ``log G_t`` of a prefix score every step ("incremental") would count the evidence of step 1 T times.
``"current"`` (Puri et al., arXiv 2502.01618)
    weights are recomputed at every step from the current prefix score alone, ``log w_t = log G_t / tau_t``,
    i.e. ``softmax(log G / tau)`` over the particles; finished particles keep their last score. With
    ``log G = logit(r)`` this is the paper's ``softmax(logit(r) / tau)``. With resampling at every step it
    equals "incremental" (resampling resets the weights), i.e. the target ``prod_t G_t``; it gives no
    marginal-likelihood estimate (``log_marginal`` is NaN).

For a PRM reward ``r`` in (0, 1): pass ``log r`` for a probability-style potential, ``logit(r) = log r -
log(1 - r)`` to reproduce Puri et al.

Particle Gibbs (Andrieu, Doucet & Holenstein 2010): the core keeps every step's particle set when
``keep_particles`` is on, so a particle's whole trajectory is ``select`` of the stored sets along its
lineage (`reference_trajectory`); conditional SMC pins that trajectory in slot 0.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from prmlab.choices import check_choice
from prmlab.decoding.resampling import RESAMPLING_SCHEMES, keep_in_place, logsumexp, resample
from prmlab.metrics import ess

WEIGHTINGS = ("incremental", "ratio", "current")

Particles = Any


@dataclass
class SMCModel:
    """A state-space model as plain callables; see the module docstring for the contract of each."""

    init: Callable[[int, np.random.Generator], Particles]
    extend: Callable[[Particles, np.ndarray, np.random.Generator], Particles]
    log_potential: Callable[[Particles, int], np.ndarray]
    is_finished: Callable[[Particles], np.ndarray] | None = None
    select: Callable[[Particles, np.ndarray], Particles] | None = None
    concat: Callable[[list[Particles]], Particles] | None = None


@dataclass
class SMCConfig:
    """Parameters of a particle filter run (all validated on construction)."""

    n_particles: int = 16
    """number of particles N."""
    resampling: str = "systematic"
    """resampling scheme, one of RESAMPLING_SCHEMES."""
    ess_threshold: float = 1.0
    """resample before a step when ESS/N < ess_threshold; 1.0 = before every step, 0.0 = never."""
    temperature: float = 1.0
    """tau > 0: weights are exp(log_potential / tau); large tau flattens them towards uniform."""
    schedule: Sequence[float] | Callable[[int], float] | None = None
    """annealing schedule overriding ``temperature``: tau_t = schedule(t) for step t = 1, 2, ..., or
    schedule[t - 1] from a list (its last value is held for later steps)."""
    weighting: str = "incremental"
    """how potentials become weights: "incremental", "ratio" or "current" (module docstring)."""
    max_steps: int = 64
    """stop after this many steps even if some particles are not finished."""
    seed: int | None = 0
    """seed of the numpy Generator used when the caller passes no ``rng``."""
    keep_particles: bool = False
    """store every step's particle set in the history (needed for trajectories / Particle Gibbs)."""

    def __post_init__(self):
        if not (isinstance(self.n_particles, (int, np.integer)) and self.n_particles >= 1):
            raise ValueError(f"n_particles must be an integer >= 1, got {self.n_particles!r}")
        check_choice(self.resampling, RESAMPLING_SCHEMES, "resampling scheme")
        if not 0.0 <= self.ess_threshold <= 1.0:
            raise ValueError(f"ess_threshold must be in [0, 1] (1 = every step, 0 = never), got {self.ess_threshold}")
        _check_tau(self.temperature, "temperature")
        if self.schedule is not None and not callable(self.schedule):
            if len(self.schedule) == 0:
                raise ValueError("schedule must be a callable or a non-empty list of temperatures > 0")
            for tau in self.schedule:
                _check_tau(tau, "every schedule temperature")
        check_choice(self.weighting, WEIGHTINGS, "weighting")
        if not (isinstance(self.max_steps, (int, np.integer)) and self.max_steps >= 1):
            raise ValueError(f"max_steps must be an integer >= 1, got {self.max_steps!r}")

    def tau(self, t: int) -> float:
        """Temperature tau_t of step t (1-based)."""
        if self.schedule is None:
            return float(self.temperature)
        if callable(self.schedule):
            return _check_tau(self.schedule(t), f"schedule({t})")
        return float(self.schedule[min(t, len(self.schedule)) - 1])


@dataclass
class StepRecord:
    """What happened at step t (1-based). Slot i of this step descends from slot ``ancestors[i]`` of
    the previous step (of the initial particles for t = 1): enough to draw the genealogy."""

    t: int
    ancestors: np.ndarray  # int64 [N]: identity when not resampled
    resampled: bool  # whether the particles were resampled before this step's extension
    alive: np.ndarray  # bool [N]: particles extended at this step
    log_potentials: np.ndarray  # latest raw log G of each particle (finished ones keep their last)
    log_weights: np.ndarray  # normalized log-weights after this step's reweighting
    ess: float  # ESS of those weights (decides resampling before the next step)
    temperature: float
    particles: Particles = None  # this step's particle set, when config.keep_particles


@dataclass
class Reference:
    """A particle's trajectory for conditional SMC: ``states[t]`` is a one-particle container holding
    its state after step t (``states[0]`` = initial state)."""

    states: list
    lineage: np.ndarray  # its slot at steps 0..T in the run it was drawn from


@dataclass
class SMCResult:
    """Output of a run: final particles and normalized log-weights, the log-marginal estimate, history."""

    particles: Particles
    log_weights: np.ndarray  # normalized: logsumexp = 0
    log_marginal: float  # estimate of log Z_T ("incremental"/"ratio"); NaN for "current"
    history: list[StepRecord]
    steps: int
    finished: np.ndarray  # bool [N]
    initial_particles: Particles = None  # kept when config.keep_particles
    reference: Reference | None = None  # the pinned trajectory (slot 0) in conditional SMC

    @property
    def weights(self) -> np.ndarray:
        return np.exp(self.log_weights)

    @property
    def ess(self) -> np.ndarray:
        """ESS after each step."""
        return np.array([h.ess for h in self.history])


def run_smc(model: SMCModel, config: SMCConfig, rng: np.random.Generator | None = None) -> SMCResult:
    """Run the particle filter: repeat {resample if ESS/N < threshold; extend unfinished particles; reweight}
    until every particle is finished or ``config.max_steps`` steps. Weights are not resampled after the
    last step, so the final weighted particles represent the target (``SMCResult.weights``)."""
    rng = np.random.default_rng(config.seed) if rng is None else rng
    return _run(model, config, rng, reference=None)


def conditional_smc(
    model: SMCModel, config: SMCConfig, reference: Reference, rng: np.random.Generator | None = None
) -> SMCResult:
    """Conditional SMC: like `run_smc` but slot 0 is pinned to ``reference`` at every step and its
    ancestor is always itself. The other N-1 ancestors are drawn by multinomial resampling whatever
    ``config.resampling`` says: that is the exact conditional law (conditional versions of the low-variance
    schemes need special care, Chopin & Singh 2015). ``log_marginal`` is reported but is not an unbiased
    estimate here."""
    rng = np.random.default_rng(config.seed) if rng is None else rng
    return _run(model, config, rng, reference=reference)


def particle_gibbs(
    model: SMCModel, config: SMCConfig, sweeps: int, rng: np.random.Generator | None = None
) -> list[SMCResult]:
    """Particle Gibbs: sweep 1 is plain SMC; each later sweep draws a reference trajectory from the
    previous sweep's final weights and runs `conditional_smc` with it pinned in slot 0. Returns one
    `SMCResult` per sweep (``keep_particles`` is switched on: trajectories need every step's particles)."""
    if sweeps < 1:
        raise ValueError(f"sweeps must be >= 1, got {sweeps}")
    config = dataclasses.replace(config, keep_particles=True)
    rng = np.random.default_rng(config.seed) if rng is None else rng
    results = [_run(model, config, rng, reference=None)]
    for _ in range(sweeps - 1):
        prev = results[-1]
        k = int(resample(prev.weights, 1, "multinomial", rng)[0])
        results.append(_run(model, config, rng, reference=reference_trajectory(model, prev, k)))
    return results


def lineage(result: SMCResult, index: int) -> np.ndarray:
    """Slots of final particle ``index``'s ancestors at steps 0..T (entry T is ``index`` itself)."""
    slots = np.empty(result.steps + 1, dtype=np.int64)
    slots[-1] = index
    for t in range(result.steps, 0, -1):
        slots[t - 1] = result.history[t - 1].ancestors[slots[t]]
    return slots


def reference_trajectory(model: SMCModel, result: SMCResult, index: int) -> Reference:
    """The trajectory of final particle ``index`` (needs a run with ``keep_particles``)."""
    if result.initial_particles is None:
        raise ValueError("the run did not keep its particles; set SMCConfig(keep_particles=True)")
    select = model.select or default_select
    slots = lineage(result, index)
    sets = [result.initial_particles] + [h.particles for h in result.history]
    states = [select(p, np.array([s], dtype=np.int64)) for p, s in zip(sets, slots)]
    return Reference(states=states, lineage=slots)


def default_select(particles: Particles, indices: np.ndarray) -> Particles:
    """Lists/tuples by comprehension (the same objects, not copies); arrays by fancy indexing."""
    if isinstance(particles, (list, tuple)):
        return [particles[i] for i in indices]
    return particles[indices]


def default_concat(parts: list[Particles]) -> Particles:
    """Join lists/tuples, numpy arrays (axis 0) or torch tensors (dim 0)."""
    if isinstance(parts[0], (list, tuple)):
        return [p for part in parts for p in part]
    if isinstance(parts[0], np.ndarray):
        return np.concatenate(parts, axis=0)
    if type(parts[0]).__module__.startswith("torch"):
        import torch

        return torch.cat(parts, dim=0)
    raise TypeError(f"no default concat for {type(parts[0]).__name__}; pass SMCModel(concat=...)")


def _run(model: SMCModel, config: SMCConfig, rng: np.random.Generator, reference: Reference | None) -> SMCResult:
    n = config.n_particles
    select = model.select or default_select
    concat = model.concat or default_concat

    def finished_of(p):
        if model.is_finished is None:
            return np.zeros(n, dtype=bool)
        return _check_array(model.is_finished(p), n, bool, "is_finished")

    def pin_reference(p, t):
        # slot 0 <- the reference's state after step t; the other slots keep their own states
        return concat([reference.states[t], select(p, np.arange(1, n))])

    particles = model.init(n, rng)
    if reference is not None:
        particles = pin_reference(particles, 0)
    initial = particles if config.keep_particles else None
    weights = ParticleWeights(config, rng)
    finished = finished_of(particles)

    for t in range(1, config.max_steps + 1):
        if finished.all():
            break
        ancestors = weights.resample(t, conditional=reference is not None)
        if weights.pending_resampled:
            particles = select(particles, ancestors)
            finished = finished[ancestors]

        alive = ~finished
        log_g = np.zeros(n)
        if alive.any():
            extend_mask = alive.copy()
            if reference is not None:
                extend_mask[0] = False  # slot 0 is overwritten with the reference below
            particles = model.extend(particles, extend_mask, rng)
            if reference is not None and alive[0]:
                if t >= len(reference.states):
                    raise ValueError(f"the reference trajectory has {len(reference.states) - 1} steps but is "
                                     f"still unfinished at step {t}; was it drawn with the same max_steps?")
                particles = pin_reference(particles, t)
            log_g = _check_array(model.log_potential(particles, t), n, np.float64, "log_potential")
            if (np.isnan(log_g[alive]) | np.isposinf(log_g[alive])).any():
                raise ValueError(f"log_potential returned NaN or +inf at step {t}")
        weights.reweight(t, alive, log_g, particles if config.keep_particles else None)
        finished = finished_of(particles)

    return SMCResult(
        particles=particles,
        log_weights=weights.log_w,
        log_marginal=weights.log_z,
        history=weights.history,
        steps=len(weights.history),
        finished=finished,
        initial_particles=initial,
        reference=reference,
    )


class ParticleWeights:
    """The weights of one particle system, updated as SMC updates them: the resampling decision, the
    three weighting conventions, the log-marginal estimate and one `StepRecord` per step.

    `run_smc` drives it for any state-space model; the language-model binding drives one per problem
    while all problems share one batch. Per step: ``resample(t)`` (ancestors, identity unless ESS/N
    fell under the threshold; never before step 1), then ``reweight(t, alive, log_g)``.
    """

    def __init__(self, config: SMCConfig, rng: np.random.Generator):
        n = config.n_particles
        self.config, self.rng, self.n = config, rng, n
        self.log_w = np.full(n, -math.log(n))  # kept normalized after every step
        self.last_log_g = np.zeros(n)  # latest raw log G per particle (0 = no evidence yet)
        self.prev_phi = np.zeros(n)  # last tempered log G, for the "ratio" increments
        self.log_z = 0.0 if config.weighting != "current" else math.nan
        self.history: list[StepRecord] = []
        self.pending_resampled = False
        self._pending_ancestors = np.arange(n, dtype=np.int64)

    def resample(self, t: int, conditional: bool = False) -> np.ndarray:
        """Ancestors of step t's particles. ``conditional`` (Particle Gibbs) keeps slot 0's lineage and
        draws the other N-1 multinomially, the exact conditional draw."""
        n = self.n
        ancestors = np.arange(n, dtype=np.int64)
        resampled = t > 1 and _should_resample(self.log_w, self.config.ess_threshold)
        if resampled:
            w = np.exp(self.log_w)
            if conditional:
                ancestors = np.concatenate([[0], resample(w, n - 1, "multinomial", self.rng)])
            else:  # survivors keep their slots (copies go to dead slots): cheap for cached state
                ancestors = keep_in_place(resample(w, n, self.config.resampling, self.rng))
            self.last_log_g, self.prev_phi = self.last_log_g[ancestors], self.prev_phi[ancestors]
            self.log_w = np.full(n, -math.log(n))
        self.pending_resampled, self._pending_ancestors = resampled, ancestors
        return ancestors

    def reweight(self, t: int, alive: np.ndarray, log_g: np.ndarray, particles=None) -> None:
        """Fold step t's potentials of the extended (``alive``) particles into the weights."""
        cfg = self.config
        self.last_log_g = np.where(alive, log_g, self.last_log_g)
        tau = cfg.tau(t)
        phi = self.last_log_g / tau
        if cfg.weighting == "current":
            new_log_w = phi.copy()
        else:
            if cfg.weighting == "incremental":
                inc = np.where(alive, phi, 0.0)
            else:  # "ratio": change in the tempered prefix score
                with np.errstate(invalid="ignore"):
                    inc = phi - self.prev_phi
                inc[np.isneginf(phi)] = -np.inf
            with np.errstate(invalid="ignore"):
                new_log_w = self.log_w + inc
            new_log_w[np.isneginf(self.log_w)] = -np.inf  # a dead particle stays dead
            # log_w is normalized, so this adds log sum_i W_{t-1}^i g_t^i: the standard estimator of Z_t/Z_{t-1}
            self.log_z += logsumexp(new_log_w)
        log_norm = logsumexp(new_log_w)
        if log_norm == -np.inf:
            raise ValueError(f"every particle has weight 0 (log-weight -inf) after step {t}")
        self.log_w = new_log_w - log_norm
        self.prev_phi = phi
        self.history.append(StepRecord(
            t=t, ancestors=self._pending_ancestors, resampled=self.pending_resampled, alive=alive.copy(),
            log_potentials=self.last_log_g.copy(), log_weights=self.log_w.copy(),
            ess=ess(np.exp(self.log_w)), temperature=tau, particles=particles,
        ))


def _should_resample(log_w: np.ndarray, threshold: float) -> bool:
    """Whether ESS/N of the normalized log-weights ``log_w`` fell under ``threshold``."""
    if threshold <= 0.0:
        return False
    if threshold >= 1.0:
        return True
    return ess(np.exp(log_w)) < threshold * len(log_w)


def _check_tau(tau: float, what: str) -> float:
    if not (isinstance(tau, (int, float, np.floating, np.integer)) and math.isfinite(tau) and tau > 0):
        raise ValueError(f"{what} must be a finite number > 0, got {tau!r}")
    return float(tau)


def _check_array(x, n: int, dtype, what: str) -> np.ndarray:
    x = np.asarray(x, dtype=dtype)
    if x.shape != (n,):
        raise ValueError(f"{what} must return an array of shape ({n},), got {x.shape}")
    return x
