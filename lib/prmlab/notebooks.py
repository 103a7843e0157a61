"""The notebooks: which exist, what each is for, and the vocabulary of their parameters: a parameter
(``Param``: name, default, help, allowed values, the library config fields it sets), its allowed
values (``Range``, ``Choices``), the parameters cell read as written, and command-line values turned
into parameter values. What each notebook declares is `prmlab.studies`.

Both the runner (``prmlab run``) and tracking (``start_run`` logs every declared parameter) read
notebooks through this module, so neither imports the other for it.
"""

from __future__ import annotations

import ast
import importlib
import io
import json
import math
import tokenize
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


def _parameters_cell(path: Path) -> str:
    cells = json.loads(Path(path).read_text())["cells"]
    cell = next((c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])), None)
    if cell is None:
        raise ValueError(f"{Path(path).name} has no cell tagged 'parameters'")
    return "".join(cell["source"])


def cell_parameters(path: Path) -> list[Param]:
    """The parameters the notebook's ``parameters`` cell assigns, in order, as papermill reads them: the
    value (a literal; other expressions as their source text) and the comment at the end of the line as
    help; nothing about allowed values (the cell does not say). Read with json, ast and tokenize alone:
    every kernel asks at its start (`prmlab.tracking.start_run`), and importing papermill there
    (nbformat, jsonschema and its grammars) costs about 2 s per notebook run."""
    source = _parameters_cell(path)
    comments = {tok.start[0]: tok.string.lstrip("#").strip()
                for tok in tokenize.generate_tokens(io.StringIO(source).readline) if tok.type == tokenize.COMMENT}
    found: dict[str, Param] = {}
    for node in ast.parse(source).body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        for t in targets:
            if isinstance(t, ast.Name) and t.id not in found and node.value is not None:
                text = ast.get_source_segment(source, node.value)
                found[t.id] = Param(t.id, _literal(text), comments.get(node.end_lineno, ""))
    return list(found.values())


def parameter_names(path: Path) -> list[str]:
    """The names the ``parameters`` cell assigns, in order (`cell_parameters`)."""
    return [p.name for p in cell_parameters(path)]


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

def library_constant(path: str):
    """The library constant ``module:NAME`` as a tuple (a dict: its keys), imported only once a value is
    checked: most of these modules import torch."""
    module, name = path.split(":")
    return lambda: tuple(getattr(importlib.import_module(module), name))


@dataclass(frozen=True)
class Choices:
    """Valid values of a string parameter, from the library (``values`` computes them); ``many``: a
    comma-separated list of them, empty unless ``required``."""

    values: object  # () -> tuple of the valid values
    many: bool = False
    required: bool = False

    def check(self, name: str, value) -> None:
        """``ValueError`` naming the valid choices when ``value`` is not one of them."""
        if not isinstance(value, str):
            return
        valid = self.values()
        items = [v.strip() for v in value.split(",") if v.strip()] if self.many else [value]
        if self.required and not items:
            raise ValueError(f"parameter {name!r} names nothing; valid choices (comma-separated): {', '.join(valid)}")
        for item in items:
            check_choice(item, valid, f"{name} entry" if self.many else name)


@dataclass(frozen=True)
class Scorers(Choices):
    """Step scorers in `prmlab.scorer_spec`'s syntax: ``values`` are prmlab's own names; a published PRM
    is ``CONVENTION:PATH`` (its convention known, its local path present)."""

    def resolve(self, value):
        from .scorer_spec import resolve_paths

        return resolve_paths(value) if isinstance(value, str) else value

    def check(self, name: str, value) -> None:
        from .scorer_spec import check_scorers

        if not isinstance(value, str):
            return
        if self.required and not value.replace(",", "").strip():
            raise ValueError(f"parameter {name!r} names nothing; valid choices (comma-separated): "
                             f"{', '.join(self.values())} or CONVENTION:PATH")
        check_scorers(value, self.values(), name, many=self.many)


def _function(path: str):
    """The library function ``module:name``, imported when a value is checked."""
    module, name = path.split(":")
    return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class Checked:
    """Values a library function ``module:name`` accepts: it raises ``ValueError`` saying what it takes."""

    function: str

    def check(self, name: str, value) -> None:
        try:
            _function(self.function)(value)
        except ValueError as e:
            raise ValueError(f"parameter {name!r}: {e}") from None


@dataclass(frozen=True)
class DataFile:
    """A path parameter: empty, or a file that exists, which ``reader`` (a library function ``module:name``,
    e.g. a format detector) can open. ``resolve`` makes a relative path absolute from where the command runs:
    the kernel runs in notebooks/."""

    reader: str | None = None

    def resolve(self, value):
        return str(Path(value).expanduser().resolve()) if isinstance(value, str) and value else value

    def check(self, name: str, value) -> None:
        if not isinstance(value, str) or not value:
            return
        if not Path(value).expanduser().is_file():
            raise ValueError(f"parameter {name!r}: no such file {value!r}")
        if self.reader is not None:
            _function(self.reader)(Path(value).expanduser())


@dataclass(frozen=True)
class Param:
    """One parameter of a notebook, as its parameters cell writes it: ``name = default  # help``."""

    name: str
    default: object  # its type is the parameter's type
    help: str  # the comment on the parameter's line of the cell, word for word
    allowed: Range | Choices | Checked | DataFile | None = None  # checked before any kernel starts
    to: str | tuple[str, ...] = ()  # the library config fields it sets ("RLConfig.steps"; `prmlab.studies.config`)

    @property
    def fields(self) -> tuple[str, ...]:
        return (self.to,) if isinstance(self.to, str) else tuple(self.to)

    def check(self, value) -> None:
        """``ValueError`` when ``value`` is outside the parameter's range or choices."""
        if isinstance(self.allowed, Range):
            if value not in self.allowed:
                raise ValueError(f"parameter {self.name!r} must lie in {self.allowed}; got {value!r}")
        elif self.allowed is not None:
            self.allowed.check(self.name, value)

    def parse(self, raw: str):
        """A command-line value, converted to the type of the default (local paths made absolute) and checked."""
        value = parse_value(self.name, raw, self.default)
        if hasattr(self.allowed, "resolve"):
            value = self.allowed.resolve(value)
        self.check(value)
        return value


_TYPE_NAMES = {bool: "a boolean (true or false)", int: "an integer", float: "a number", str: "a string"}


def parse_value(name: str, raw: str, default):
    """A command-line value for parameter ``name``, converted to the type of its default; ``ValueError``
    says what the parameter takes."""
    kind = type(default)
    try:
        if kind is bool:
            return {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}[raw.lower()]
        if kind is int:
            return int(raw)
        if kind is float:
            return float(raw)
        if kind is str:
            return raw
        return _literal(raw)  # lists, dicts, None: a Python literal
    except (KeyError, ValueError):
        raise ValueError(f"parameter {name!r} takes {_TYPE_NAMES[kind]} (default {default!r}); got {raw!r}") from None
