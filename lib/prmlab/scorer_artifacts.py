"""The step scorers notebooks 01-04 and ``prmlab processbench`` name (`prmlab.scorer_spec`'s syntax), loaded
from the runs that trained them (01's PRMs, 03's implicit PRM: `prmlab.artifacts`), from a published PRM's
hub name or local path (`prmlab.prm.adapters.load_scorer`), or built on the spot (the task's step oracle, the
policy's own likelihood), with the run tags that say where each came from.
"""

from __future__ import annotations

from . import artifacts
from .prm.implicit import IMPLICIT
from .prm.likelihood import LIKELIHOOD, likelihood_scorer
from .prm.model import CachedPRMScorer
from .prm.oracle import ORACLE, OracleScorer
from .scorer_spec import ScorerSpec, check_scorer, parse_scorers

POLICY = "policy"  # the source of the likelihood scorer: the policy itself (its run: tag prmlab.policy_run)


def load_step_scorers(spec: str, task, problems: list, tokenizer, profile: str | None = None,
                      prm_run_id: str | None = None, *, policy=None) -> tuple[dict, dict]:
    """The step scorers named in ``spec`` (comma-separated): ``oracle`` (the exact step oracle of the
    task; it needs one), ``likelihood`` (the policy's own running-minimum token log-prob, untrained:
    `prmlab.prm.likelihood`; it needs ``policy``), ``implicit`` (PRIME's implicit PRM from the latest
    finished run of notebook 03 of ``profile``), PRM artifacts of notebook 01 (``prm``, ``prm_oracle``,
    ...), loaded from its latest finished run of ``profile`` or from the run ``prm_run_id``, or published
    PRMs (``[NAME=]CONVENTION:PATH``).

    Returns ``(scorers, sources)``: name -> scorer, and name -> where it came from (a run id; 'oracle';
    'policy' for the likelihood; ``CONVENTION:PATH`` for a published PRM)."""
    scorers, sources = {}, {}
    for s in parse_scorers(spec):
        name = s.name
        if s.published:
            scorers[name], sources[name] = load_published(s), s.source
        elif name == ORACLE:
            if not task.has_oracle:
                raise ValueError(f"the 'oracle' scorer needs a task with a step oracle; {task.name} has none")
            scorers[name], sources[name] = OracleScorer(task, problems, eps=1e-3, tokenizer=tokenizer), ORACLE
        elif name == LIKELIHOOD:  # the policy's own likelihood: the baseline every PRM must beat
            if policy is None:
                raise ValueError("the 'likelihood' scorer reads the policy's own token log-probs: pass policy= "
                                 "(the policy being searched or trained) to load_step_scorers")
            separator = getattr(task, "step_delimiter", "\n")
            scorers[name], sources[name] = likelihood_scorer(policy, tokenizer, separator), POLICY
        elif name == IMPLICIT:  # PRIME's implicit PRM, trained online by notebook 03
            implicit, _, implicit_run = artifacts.load_model("03_prime_implicit", "implicit_prm", kind="implicit_prm",
                                                             profile=profile)
            scorers[name], sources[name] = implicit, implicit_run.info.run_id
        else:
            scorers[name], sources[name] = load_logged_prm(name, profile, prm_run_id)
    if not scorers:
        raise ValueError(f"scorers is empty; name at least one of {ORACLE}, {LIKELIHOOD}, {IMPLICIT}, a PRM "
                         "artifact of notebook 01 (prm, prm_oracle, ...) or a published PRM (CONVENTION:PATH)")
    return scorers, sources


def load_published(spec: ScorerSpec, device: str | None = None):
    """The published PRM ``spec`` names (checked first: convention, local path), read by its convention."""
    import os

    from .prm.adapters import load_scorer

    check_scorer(spec, ())
    return load_scorer(os.path.expanduser(spec.path), spec.convention, device=device)


def load_logged_prm(name: str, profile: str | None, prm_run_id: str | None = None):
    """The PRM artifact ``name`` of notebook 01 (its latest finished run of ``profile``, or ``prm_run_id``) as
    a step scorer, and that run's id."""
    prm, _, prm_run = artifacts.load_model("01_prm_training", name, kind="prm", profile=profile, run_id=prm_run_id)
    return CachedPRMScorer(prm), prm_run.info.run_id


def scorer_tags(policy_run_id: str, sources: dict) -> dict:
    """Run tags saying where the policy and every scorer came from (``prmlab.prm_run``: the first PRM's run,
    or the ``CONVENTION:PATH`` of a published PRM)."""
    return {"prmlab.policy_run": policy_run_id, **{f"prmlab.scorer.{k}": v for k, v in sources.items()},
            "prmlab.prm_run": next((v for v in sources.values() if v not in (ORACLE, POLICY)), ORACLE)}
