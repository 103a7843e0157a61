"""The notebooks: which exist, what each is for, the parameters each declares, and command-line values
turned into parameter values (typed, range- and choice-checked before any kernel starts).

Both the runner (``prmlab run``) and tracking (``start_run`` logs every declared parameter) read
notebooks through this module, so neither imports the other for it.
"""

from __future__ import annotations

import ast
import importlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

from .choices import check_choice, unknown_choice
from .paths import notebooks_dir

# Wall time of each notebook on the tiny profile on 2 CPU cores, the estimate `prmlab notebooks` shows before a run
# is measured (2026-12-02: 00 4.1 min, 01 7.0; 02 and 03 at one seed, from their three-seed runs of 14.8 and 8.6;
# 04 from its run at max_n 64, 18.1 min, of which N = 64 was about half); the README quotes it.
TINY_MINUTES = {"00_policy_sft": 4, "01_prm_training": 7, "02_pure_min_form": 5, "03_prime_implicit": 4,
                "04_smc_decoding": 11}


def available_notebooks() -> list[Path]:
    return sorted(p for p in notebooks_dir().glob("[0-9][0-9]_*.ipynb"))


def resolve_notebook(spec: str | Path) -> Path:
    """A notebook from its number (``00``), its name (``00_policy_sft``) or its path."""
    spec = str(spec)
    path = Path(spec)
    if path.suffix == ".ipynb" and path.exists():
        return path.resolve()
    for nb in available_notebooks():
        if spec in (nb.stem, nb.name, nb.stem[:2]) or (spec.isdigit() and nb.stem[:2] == spec.zfill(2)):
            return nb
    raise unknown_choice(spec, [f"{nb.stem[:2]} ({nb.stem})" for nb in available_notebooks()], "notebook")


def purpose(path: Path) -> str:
    """The notebook's one-line purpose: its first markdown heading without the number
    (``# 00 · The base policy`` -> ``The base policy``)."""
    cells = json.loads(Path(path).read_text())["cells"]
    for cell in cells:
        if cell["cell_type"] != "markdown":
            continue
        for line in "".join(cell["source"]).splitlines():
            if line.startswith("#"):
                title = line.lstrip("#").strip()
                number, _, rest = title.partition(" ")
                return rest.lstrip("·:-— ").strip() if number.isdigit() and rest else title
    return ""


def notebook_parameters(path: Path) -> dict[str, dict]:
    """Parameters declared in the notebook's ``parameters`` cell: name -> {default, type, help}."""
    import papermill

    found = papermill.inspect_notebook(str(path))
    if not found:
        raise ValueError(f"{Path(path).name} has no cell tagged 'parameters'")
    return {name: {"default": _literal(p["default"]), "type": p["inferred_type_name"], "help": p["help"]}
            for name, p in found.items()}


def parameter_names(path: Path) -> list[str]:
    """The names the ``parameters`` cell assigns, in order: what `notebook_parameters` lists, read with json
    and ast alone. Every kernel asks at its start (`prmlab.tracking.start_run`), and importing papermill
    there (nbformat, jsonschema and its grammars) costs about 2 s per notebook run."""
    cells = json.loads(Path(path).read_text())["cells"]
    cell = next((c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])), None)
    if cell is None:
        raise ValueError(f"{Path(path).name} has no cell tagged 'parameters'")
    names = []
    for node in ast.parse("".join(cell["source"])).body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        names += [t.id for t in targets if isinstance(t, ast.Name) and t.id not in names]
    return names


def _literal(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


@dataclass(frozen=True)
class Range:
    """Allowed values of a numeric parameter; ``None`` leaves that side open."""

    low: float | None = None
    high: float | None = None
    low_inclusive: bool = True

    def __contains__(self, value) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
            return False
        above = self.low is None or (value >= self.low if self.low_inclusive else value > self.low)
        return above and (self.high is None or value <= self.high)

    def __str__(self) -> str:
        low = "-inf" if self.low is None else f"{self.low:g}"
        high = "inf" if self.high is None else f"{self.high:g}"
        return f"{'[' if self.low_inclusive and self.low is not None else '('}{low}, {high}{']' if self.high is not None else ')'}"


POSITIVE = Range(0, None, low_inclusive=False)
AT_LEAST_0 = Range(0)
AT_LEAST_1 = Range(1)
SHARE = Range(0, 1)

# The ranges known for parameters that mean the same in every notebook declaring them; checked by
# ``parse_value`` before a kernel starts. A parameter not listed here is checked by its notebook.
RANGES: dict[str, Range] = {
    "seed": AT_LEAST_0,
    "mistake_rate": SHARE,
    "misconception_rate": SHARE,
    "clean_sft_steps": AT_LEAST_0,
    "ess_threshold": SHARE,
    "top_p": Range(0, 1, low_inclusive=False),
    "temperature": POSITIVE,
    "smc_temperature": POSITIVE,
    "lr": POSITIVE,
    "prm_lr": POSITIVE,
    "sft_steps": AT_LEAST_0,
    "prm_steps": AT_LEAST_0,
    "explorer_samples": AT_LEAST_0,
    "lora_r": AT_LEAST_0,  # 0: no LoRA (notebooks 02 and 03)
    "kl_coef": AT_LEAST_0,
    "clip_eps": POSITIVE,
    "min_temperature": POSITIVE,
    "beta": POSITIVE,
    "process_coef": AT_LEAST_0,
    "outcome_coef": AT_LEAST_0,
    "filter_low": SHARE,
    "filter_high": SHARE,
    "k": Range(2),  # leave-one-out baselines need a group of at least 2
    **{name: AT_LEAST_1 for name in (
        "min_ops", "max_ops", "max_operand", "max_value", "n_train", "n_eval", "hidden_size", "num_layers",
        "num_heads", "num_kv_heads", "intermediate_size", "batch_size", "max_k", "max_new_tokens", "sample_batch",
        "n_label_problems", "n_per_problem", "mc_n", "prm_batch", "bon_max_n", "real_text_questions",
        "repetitions", "n_problems", "max_n", "beam_m", "sensitivity_n", "genealogy_particles", "rl_steps",
        "prompts_per_step", "ppo_epochs", "minibatch_size", "eval_every", "eval_samples", "quality_problems",
        "quality_samples")},
}

_TYPE_NAMES = {bool: "a boolean (true or false)", int: "an integer", float: "a number", str: "a string"}


def parse_value(name: str, raw: str, default):
    """A command-line value for parameter ``name``, converted to the type of its default and checked
    against its known range; ``ValueError`` says what the parameter takes."""
    kind = type(default)
    try:
        if kind is bool:
            value = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}[raw.lower()]
        elif kind is int:
            value = int(raw)
        elif kind is float:
            value = float(raw)
        elif kind is str:
            value = raw
        else:
            value = _literal(raw)  # lists, dicts, None: a Python literal
    except (KeyError, ValueError):
        raise ValueError(f"parameter {name!r} takes {_TYPE_NAMES[kind]} (default {default!r}); got {raw!r}") from None
    check_range(name, value)
    return value


def check_range(name: str, value) -> None:
    allowed = RANGES.get(name)
    if allowed is not None and value not in allowed:
        raise ValueError(f"parameter {name!r} must lie in {allowed}; got {value!r}")


def _constant(path: str):
    """The library constant ``module:NAME`` (a dict: its keys), imported only once a value is checked:
    most of these modules import torch."""
    module, name = path.split(":")
    return lambda: tuple(getattr(importlib.import_module(module), name))


def _prm_artifacts() -> tuple[str, ...]:
    """The PRMs notebook 01 can log: 'prm' (its main one), 'prm_<labels>' and 'orm'."""
    from .prm.labels import LABEL_SOURCES
    from .prm.train import artifact_name, model_name

    return ("prm", *(artifact_name(model_name(source), main="") for source in LABEL_SOURCES))


def _step_scorers() -> tuple[str, ...]:
    """What notebook 04's ``scorers`` may name (`prmlab.decoding.study.load_step_scorers`)."""
    from .decoding.study import IMPLICIT, LIKELIHOOD, ORACLE

    return (ORACLE, LIKELIHOOD, IMPLICIT, *_prm_artifacts())


@dataclass(frozen=True)
class Choices:
    """Valid values of a string parameter, from the library (``values`` computes them); ``many``: a
    comma-separated list of them, empty unless ``required``."""

    values: object  # () -> tuple of the valid values
    many: bool = False
    required: bool = False


_ARMS, _METHODS, _AGGREGATIONS = "prmlab.rl.pure_arms:PURE_ARMS", "prmlab.decoding.compare:METHODS", "prmlab.metrics:AGGREGATIONS"

# The choice parameters of the notebooks, checked by ``check_choices`` before a kernel starts (a name
# means the same in every notebook declaring it, as in RANGES).
CHOICES: dict[str, Choices] = {
    "profile": Choices(_constant("prmlab.profiles:PROFILES")),
    "dataset": Choices(_constant("prmlab.tasks:TASKS")),
    "step_format": Choices(_constant("prmlab.tasks.real:STEP_FORMATS")),
    "arch": Choices(_constant("prmlab.models:ARCHITECTURES")),
    "misconceptions": Choices(_constant("prmlab.tasks.arith:MISCONCEPTIONS"), many=True),
    "label_source": Choices(_constant("prmlab.prm.labels:LABEL_SOURCES")),
    "train_labels": Choices(_constant("prmlab.prm.labels:LABEL_SOURCES"), many=True),
    "prm_backbone": Choices(_constant("prmlab.prm.backbone:BACKBONES")),
    "prm_readout": Choices(_constant("prmlab.prm.model:READOUTS")),
    "eval_split": Choices(_constant("prmlab.prm.train:EVAL_SPLITS")),
    "prm_name": Choices(_prm_artifacts),
    "arms": Choices(_constant(_ARMS), many=True, required=True),
    "reward_convention": Choices(_constant("prmlab.rl.credit:PROB_CONVENTIONS")),
    "baseline": Choices(_constant("prmlab.rl.pure:BASELINES")),
    "update_order": Choices(_constant("prmlab.prm.implicit:UPDATE_ORDERS")),
    "scorers": Choices(_step_scorers, many=True, required=True),
    "likelihood_methods": Choices(_constant(_METHODS), many=True),
    "aggregation": Choices(_constant(_AGGREGATIONS)),
    "rerank_aggregation": Choices(_constant(_AGGREGATIONS)),
    "smc_resampling": Choices(_constant("prmlab.decoding.resampling:RESAMPLING_SCHEMES")),
}


def check_choices(name: str, value) -> None:
    """``ValueError`` naming the valid choices when ``value`` is not one of parameter ``name``'s."""
    choices = CHOICES.get(name)
    if choices is None or not isinstance(value, str):
        return
    valid = choices.values()
    items = [v.strip() for v in value.split(",") if v.strip()] if choices.many else [value]
    if choices.required and not items:
        raise ValueError(f"parameter {name!r} names nothing; valid choices (comma-separated): {', '.join(valid)}")
    for item in items:
        check_choice(item, valid, f"{name} entry" if choices.many else name)
