"""How a step scorer is named, in one syntax wherever one is chosen (01's ``scorers``, 02's ``prm_name``,
04's ``scorers``, ``prmlab processbench SCORER``):

- a name of prmlab's own: a PRM notebook 01 logged (``prm``, ``prm_oracle``, ``prm_mc_soft``, ...), ``oracle``,
  ``likelihood`` or ``implicit`` (`prmlab.scorer_artifacts`);
- ``CONVENTION:PATH``: a published PRM by hub name (``ORG/NAME``) or local path, read by its convention
  (`prmlab.prm.adapters.CONVENTIONS`: math-shepherd, qwen-prm, token-classification, prmlab), e.g.
  ``qwen-prm:Qwen/Qwen2.5-Math-PRM-7B`` or ``token-classification:/models/PURE-PRM-7B``;
- ``NAME=CONVENTION:PATH``: the same, called NAME in metrics and tables (default: the path's last part).

Lists are comma-separated, so a path may not hold a comma. Parsing and checking import nothing heavy:
the runner checks every value before a kernel starts.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from .choices import unknown_choice

# The conventions of `prmlab.prm.adapters` (which imports torch; a test checks that the two agree).
CONVENTIONS = ("math-shepherd", "qwen-prm", "token-classification", "prmlab")
HUB_NAME = re.compile(r"^\w[\w.-]*/\w[\w.-]*$")  # ORG/NAME: a hub repository, unless a local path of that name exists


@dataclass(frozen=True)
class ScorerSpec:
    """One scorer as named: ``name`` (what metrics call it) and, for a published PRM, its convention and path."""

    name: str
    convention: str | None = None  # None: one of prmlab's own scorers, called ``name``
    path: str | None = None

    @property
    def published(self) -> bool:
        return self.convention is not None

    @property
    def source(self) -> str:
        """Where it comes from, as typed (``CONVENTION:PATH``; prmlab's own: its name)."""
        return f"{self.convention}:{self.path}" if self.published else self.name


def parse_scorer(text: str) -> ScorerSpec:
    """The scorer ``text`` names (module docstring); its name made safe for metric keys."""
    text = text.strip()
    label, eq, rest = text.partition("=")
    if not eq or ":" in label:  # no NAME= prefix (an '=' inside a path after the colon is the path's)
        label, rest = "", text
    convention, colon, path = rest.partition(":")
    if not colon:
        return ScorerSpec(text)
    convention, path = convention.strip(), path.strip()
    name = label.strip() or Path(path.rstrip("/\\")).name or path
    return ScorerSpec(re.sub(r"[^\w.-]", "_", name), convention, path)


def parse_scorers(text: str) -> list[ScorerSpec]:
    """The comma-separated scorers of ``text`` (empty entries skipped); ``ValueError`` if two share a name."""
    specs = [parse_scorer(x) for x in text.split(",") if x.strip()]
    names = [s.name for s in specs]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"scorers {twice} are named twice; name published PRMs apart with NAME=CONVENTION:PATH")
    return specs


def resolve_paths(text: str) -> str:
    """``text`` with every published PRM's local path made absolute (from where the command runs: the
    kernel runs in notebooks/); names and hub names unchanged."""
    out = []
    for item in text.split(","):
        s = parse_scorer(item) if item.strip() else None
        if s is None or not s.published or not s.path or not is_local(s.path):
            out.append(item)
            continue
        path = str(Path(os.path.expanduser(s.path)).resolve())
        label = "" if parse_scorer(f"{s.convention}:{path}").name == s.name else f"{s.name}="
        out.append(f"{label}{s.convention}:{path}")
    return ",".join(out)


def is_local(path: str) -> bool:
    """Whether ``path`` means a local path (and so must exist) rather than a hub name ``ORG/NAME``."""
    return Path(os.path.expanduser(path)).exists() or not HUB_NAME.match(path)


def check_scorer(spec: ScorerSpec, own: tuple[str, ...], what: str = "scorer") -> None:
    """``ValueError`` naming the valid choices: an unknown name of prmlab's own (``own``), an unknown
    convention, an empty or missing local path. Hub names are not looked up (that would need the network)."""
    if not spec.published:
        if spec.name not in own:
            choices = [*own, *(f"{c}:PATH" for c in CONVENTIONS)]
            raise unknown_choice(spec.name, choices, what)
        return
    if spec.convention not in CONVENTIONS:
        raise unknown_choice(spec.convention, CONVENTIONS, f"PRM convention in {what} {spec.source!r}")
    if not spec.path:
        raise ValueError(f"{what} {spec.source!r} names no model: write {spec.convention}:PATH (a local path or ORG/NAME)")
    if is_local(spec.path) and not Path(os.path.expanduser(spec.path)).exists():
        raise ValueError(f"{what} {spec.source!r}: no such local path {spec.path!r} (a hub name reads ORG/NAME)")


def check_scorers(text: str, own: tuple[str, ...], what: str = "scorer", many: bool = True) -> list[ScorerSpec]:
    """The checked scorers of ``text``: a comma-separated list, or exactly one unless ``many``."""
    specs = parse_scorers(text)
    if not many and len(specs) != 1:
        raise ValueError(f"{what} names one scorer ({', '.join(own)} or CONVENTION:PATH); got {text!r}")
    for s in specs:
        check_scorer(s, own, f"{what} entry" if many else what)
    return specs
