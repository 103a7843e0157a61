"""Executing notebooks with papermill, one tracked MLflow run per execution.

The runner creates the run before the kernel starts (so a crash still leaves a record), passes its
id to the kernel in ``$PRMLAB_RUN_ID``, writes the executed notebook to ``runs/notebooks/`` and
attaches it to the run, then marks the run FINISHED, or FAILED if a cell raised. Interrupted (Ctrl-C,
or SIGTERM/SIGHUP from a scheduler, a timeout or a closed terminal) it marks the run KILLED, again with
the partial notebook attached, so no run is left RUNNING by a runner that stopped.
"""

from __future__ import annotations

import ast
import contextlib
import os
import signal
import threading
from dataclasses import dataclass
from pathlib import Path

from . import tracking
from .paths import notebooks_dir, runs_dir
from .profiles import PROFILES, overlay


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP arrived while a notebook ran (handled like Ctrl-C: the run ends KILLED)."""


@contextlib.contextmanager
def signals_interrupt():
    """For the duration: Ctrl-C raises ``KeyboardInterrupt`` and SIGTERM/SIGHUP raise ``Terminated``,
    once; later signals are ignored until the block ends, so the cleanup that follows the first one
    (ending the MLflow run) is not cut short by a second (a sweep stopping its runs, a repeated Ctrl-C).
    Main thread only: Python delivers signals there."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    names = [n for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n)]

    def interrupt(signum, frame):
        for n in names:
            signal.signal(getattr(signal, n), signal.SIG_IGN)
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise Terminated(f"received {signal.Signals(signum).name}")

    previous = {n: signal.signal(getattr(signal, n), interrupt) for n in names}
    try:
        yield
    finally:
        for n, handler in previous.items():
            signal.signal(getattr(signal, n), handler)


class RunFailed(RuntimeError):
    def __init__(self, message: str, run_id: str, output: Path):
        super().__init__(message)
        self.run_id = run_id
        self.output = output


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
    valid = ", ".join(f"{nb.stem[:2]} ({nb.stem})" for nb in available_notebooks())
    raise ValueError(f"unknown notebook {spec!r}; valid notebooks: {valid}")


def notebook_parameters(path: Path) -> dict[str, dict]:
    """Parameters declared in the notebook's ``parameters`` cell: name -> {default, type, help}."""
    import papermill

    found = papermill.inspect_notebook(str(path))
    if not found:
        raise ValueError(f"{path.name} has no cell tagged 'parameters'")
    return {name: {"default": _literal(p["default"]), "type": p["inferred_type_name"], "help": p["help"]} for name, p in found.items()}


def _literal(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_value(raw: str, default):
    """A command-line value converted to the type of the parameter's default."""
    if isinstance(default, bool):
        low = raw.lower()
        if low in ("true", "1", "yes"):
            return True
        if low in ("false", "0", "no"):
            return False
        raise ValueError(f"expected a boolean, got {raw!r}")
    if isinstance(default, int):
        return int(raw)
    if isinstance(default, float):
        return float(raw)
    if isinstance(default, str):
        return raw
    return _literal(raw)  # lists, dicts, None: a Python literal


@dataclass
class Plan:
    """A resolved execution: the notebook, its profile and the final parameter values to inject."""

    notebook: Path
    profile: str
    parameters: dict  # what is injected: the profile's overlay and the overrides
    declared: dict  # every parameter of the notebook with its default and help

    @property
    def name(self) -> str:
        return self.notebook.stem

    @property
    def seed(self):
        return self.parameters.get("seed", self.declared.get("seed", {}).get("default", 0))


def plan(spec: str | Path, profile: str = "tiny", overrides: list[tuple[str, str]] | dict | None = None) -> Plan:
    """Check notebook, profile and parameter names before any kernel starts; errors list valid choices."""
    nb = resolve_notebook(spec)
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; valid profiles: {', '.join(PROFILES)}")
    declared = notebook_parameters(nb)
    params = {k: v for k, v in overlay(nb.stem, profile).items()}
    unknown = [k for k in params if k not in declared]
    if unknown:
        raise ValueError(f"profile {profile!r} sets parameters {unknown} that {nb.name} does not declare")
    items = overrides.items() if isinstance(overrides, dict) else (overrides or [])
    for name, raw in items:
        if name not in declared:
            raise ValueError(f"unknown parameter {name!r} for {nb.name}; valid parameters: {', '.join(declared)}")
        default = declared[name]["default"]
        try:
            params[name] = parse_value(raw, default) if isinstance(raw, str) else raw
        except ValueError as e:
            raise ValueError(f"parameter {name!r}: {e}") from None
    return Plan(nb, profile, params, declared)


def executed_notebooks_dir() -> Path:
    """``runs/notebooks/``; a local SQLite store elsewhere keeps its executed notebooks beside it."""
    store = tracking.local_store_path()
    if store is not None and store.parent.resolve() != runs_dir().resolve():
        return store.parent / "notebooks"
    return runs_dir() / "notebooks"


def execute(p: Plan, tags: dict | None = None, log_output: bool = False) -> tuple[str, Path]:
    """Run the plan through papermill; returns (MLflow run id, executed notebook path)."""
    import papermill

    run_id = tracking.create_run(p.name, p.profile, p.seed, tags)
    out_dir = executed_notebooks_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    output = out_dir / f"{p.name}-{tracking.run_name(p.name, p.profile, p.seed)}-{run_id[:8]}.ipynb"
    run = tracking.Run(run_id)
    previous = os.environ.get(tracking.RUN_ID_ENV)
    os.environ[tracking.RUN_ID_ENV] = run_id  # the kernel inherits it and logs into this run
    with signals_interrupt():  # the cleanup below runs inside it too: a second signal cannot cut it short
        try:
            papermill.execute_notebook(
                str(p.notebook),
                str(output),
                parameters=p.parameters,
                kernel_name="python3",
                progress_bar=False,
                log_output=log_output,
                cwd=str(p.notebook.parent),  # as in JupyterLab: the kernel starts in the notebook's folder
            )
        except BaseException as e:
            if output.exists():
                run.log_artifact(output, "notebook")
            run.set_tags({f"{tracking.TAG_PREFIX}error": _short_error(e)})
            run.finish("KILLED" if isinstance(e, KeyboardInterrupt) else "FAILED")
            if isinstance(e, KeyboardInterrupt):
                e.run_id, e.output = run_id, output  # for the caller's message
                raise
            raise RunFailed(f"{p.name} failed: {_short_error(e)} (run {run_id}, partial notebook {output})", run_id, output) from e
        finally:
            if previous is None:
                os.environ.pop(tracking.RUN_ID_ENV, None)
            else:
                os.environ[tracking.RUN_ID_ENV] = previous
        run.log_artifact(output, "notebook")
        run.finish("FINISHED")
    return run_id, output


def _short_error(e: BaseException) -> str:
    ename, evalue = getattr(e, "ename", None), getattr(e, "evalue", None)
    text = f"{ename}: {evalue}" if ename else f"{type(e).__name__}: {e}"
    return text.strip().splitlines()[0][:500] if text.strip() else type(e).__name__
