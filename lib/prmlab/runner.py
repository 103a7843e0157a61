"""Executing notebooks with papermill, one tracked MLflow run per execution.

The runner creates the run before the kernel starts (so a crash still leaves a record), passes its
id to the kernel in ``$PRMLAB_RUN_ID``, writes the executed notebook to ``runs/notebooks/`` and
attaches it to the run with an HTML rendering beside it (``keep_record``), then marks the run FINISHED, or FAILED if a cell raised. Interrupted (Ctrl-C,
or SIGTERM/SIGHUP from a scheduler, a timeout or a closed terminal) it marks the run KILLED, again with
the partial notebook attached, so no run is left RUNNING by a runner that stopped. While the notebook
runs, the terminal shows a line per cell and the notebook's progress bars (``CellProgress``,
``console_progress_bars``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from . import tracking
from .choices import check_choice
from .notebooks import resolve_notebook
from .paths import runs_dir
from .profiles import check_profile, overlay
from .studies import declared as declared_parameters


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP arrived while a notebook ran (handled like Ctrl-C: the run ends KILLED)."""


@contextlib.contextmanager
def signals_interrupt():
    """For the duration: Ctrl-C raises ``KeyboardInterrupt`` and SIGTERM/SIGHUP raise ``Terminated``,
    once; later signals are ignored until the block ends, so the cleanup that follows the first one
    (ending the MLflow run) is not cut short by a second (a sweep stopping its runs, a repeated Ctrl-C).
    Yields an event that is set once a signal came. Main thread only: Python delivers signals there."""
    stopping = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stopping
        return
    names = [n for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n)]

    def interrupt(signum, frame):
        stopping.set()
        for n in names:
            signal.signal(getattr(signal, n), signal.SIG_IGN)
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise Terminated(f"received {signal.Signals(signum).name}")

    previous = {n: signal.signal(getattr(signal, n), interrupt) for n in names}
    try:
        yield stopping
    finally:
        for n, handler in previous.items():
            signal.signal(getattr(signal, n), handler)


class RunFailed(RuntimeError):
    def __init__(self, message: str, run_id: str, output: Path):
        super().__init__(message)
        self.run_id = run_id
        self.output = output


@dataclass
class Plan:
    """A resolved execution: the notebook, its profile and the final parameter values to inject."""

    notebook: Path
    profile: str
    parameters: dict  # what is injected: the profile's overlay and the overrides
    declared: dict  # every parameter of the notebook: name -> `prmlab.notebooks.Param`

    @property
    def name(self) -> str:
        return self.notebook.stem

    @property
    def seed(self):
        return self.value("seed", 0)

    def value(self, name: str, missing=None):
        """The value the kernel will see: injected, else the notebook's default."""
        return self.parameters.get(name, self.declared[name].default if name in self.declared else missing)


def plan(spec: str | Path, profile: str = "tiny", overrides: list[tuple[str, str]] | dict | None = None) -> Plan:
    """Check notebook, profile and parameters (names, types, known ranges and choices) before any kernel
    starts; errors list the valid choices."""
    nb = resolve_notebook(spec)
    check_profile(profile)
    declared = declared_parameters(nb)
    params = dict(overlay(nb.stem, profile))
    unknown = [k for k in params if k not in declared]
    if unknown:
        raise ValueError(f"profile {profile!r} sets parameters {unknown} that {nb.name} does not declare")
    items = overrides.items() if isinstance(overrides, dict) else (overrides or [])
    for name, raw in items:
        check_choice(name, declared, "parameter")
        params[name] = declared[name].parse(raw) if isinstance(raw, str) else raw
    for name, value in params.items():
        declared[name].check(value)
    return Plan(nb, profile, params, declared)


def upstream(p: Plan) -> list[tuple[str, str | None]]:
    """The runs of earlier notebooks the plan's notebook loads, read as its loading cells read their
    parameters: (notebook, the run id its parameter names, or None: its latest finished run of the
    profile). 00 (the policy) for ``policy_run_id``; 01 (``prm_run_id``) for the PRMs among its step
    scorers; 03 for the scorer ``implicit``. The step scorers: those 02's arms read, 04's ``scorers``,
    03's ``prm_name`` (unless its ``prm_run_id`` is "none"); a published PRM (``CONVENTION:PATH``) needs none."""
    if "arms" in p.declared:
        from .rl.pure_arms import arm_scorer_names, parse_arms

        scorers = arm_scorer_names(parse_arms(p.value("arms")), p.value("prm_name"))
    elif "scorers" in p.declared:
        scorers = p.value("scorers")
    else:  # 03: its reference PRM, unless prm_run_id is "none"
        scorers = "" if p.value("prm_run_id") == "none" else p.value("prm_name", "")
    from .scorer_spec import parse_scorer

    names = {s.strip() for s in scorers.split(",") if s.strip() and not parse_scorer(s).published}
    needed = [("00_policy_sft", p.value("policy_run_id") or None)] if "policy_run_id" in p.declared else []
    if names:
        from .prm.implicit import IMPLICIT
        from .prm.likelihood import LIKELIHOOD
        from .prm.oracle import ORACLE

        if names - {ORACLE, LIKELIHOOD, IMPLICIT}:
            needed.append(("01_prm_training", p.value("prm_run_id") or None))
        if IMPLICIT in names:
            needed.append(("03_prime_implicit", None))
    return needed


def check_upstream(plans: list[Plan]) -> None:
    """``tracking.NoRunError`` naming every ``prmlab run`` to do first when a notebook of ``plans`` would
    load a run the store lacks: found here, before a kernel starts, not in the notebook's loading cell."""
    from .artifacts import find_run

    errors = []
    for name, run_id, profile in dict.fromkeys((*run, p.value("profile")) for p in plans for run in upstream(p)):
        try:
            find_run(name, profile, run_id)
        except tracking.NoRunError as e:
            errors.append(str(e))
    if errors:
        raise tracking.NoRunError(f"{plans[0].name} loads what earlier notebooks logged: {'; '.join(errors)}")


def executed_notebooks_dir() -> Path:
    """``runs/notebooks/``; a local SQLite store elsewhere keeps its executed notebooks beside it."""
    store = tracking.local_store_path()
    if store is not None and store.parent.resolve() != runs_dir().resolve():
        return store.parent / "notebooks"
    return runs_dir() / "notebooks"


def execute(p: Plan, tags: dict | None = None, log_output: bool = False, progress=None) -> tuple[str, Path]:
    """Run the plan through papermill; returns (MLflow run id, executed notebook path).

    ``progress``: a text stream (the terminal's stderr) that gets one line per code cell; the kernel's
    progress bars then print as text on the stderr this process leaves to it (see ``console_progress_bars``).
    ``log_output`` also streams every output of the notebook (``prmlab run -v``)."""
    import papermill

    run_id = tracking.create_run(p.name, p.profile, p.seed, tags)
    out_dir = executed_notebooks_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    output = out_dir / f"{p.name}-{tracking.run_name(p.name, p.profile, p.seed)}-{run_id[:8]}.ipynb"
    run = tracking.Run(run_id)
    previous = os.environ.get(tracking.RUN_ID_ENV)
    os.environ[tracking.RUN_ID_ENV] = run_id  # the kernel inherits it and logs into this run
    shown = {}
    if progress is not None:
        cells = CellProgress(progress)
        shown = dict(on_notebook_start=cells.on_notebook_start, on_cell_start=cells.on_cell_start,
                     on_cell_execute=cells.on_cell_execute, extra_arguments=list(KERNEL_CONSOLE_PROGRESS))
    with signals_interrupt() as stopping:  # the cleanup below runs inside it too: a second signal cannot cut it short
        try:
            with heartbeat(run):  # while the kernel runs
                papermill.execute_notebook(
                    str(p.notebook),
                    str(output),
                    parameters=p.parameters,
                    kernel_name="python3",
                    progress_bar=False,
                    log_output=log_output,
                    cwd=str(p.notebook.parent),  # as in JupyterLab: the kernel starts in the notebook's folder
                    kernel_manager_class=stoppable_kernel_manager(stopping),
                    **shown,
                )
        except BaseException as e:
            if output.exists():
                try:
                    keep_record(output, run)
                except Exception:  # a partial notebook that does not render must not hide why the run failed
                    run.log_artifact(output, "notebook")
            run.set_tags({f"{tracking.TAG_PREFIX}error": short_error(e)})
            run.finish("KILLED" if isinstance(e, KeyboardInterrupt) else "FAILED")
            if isinstance(e, KeyboardInterrupt):
                # The killed kernel leaves nbclient's cell task with a DeadKernelError nobody awaits; asyncio
                # would log it ("Task exception was never retrieved") when the task is collected.
                logging.getLogger("asyncio").setLevel(logging.CRITICAL)
                run.end_running_children(f"the parent run was stopped: {short_error(e)}")  # its kernel was killed
                e.run_id, e.output = run_id, output  # for the caller's message
                raise
            raise RunFailed(f"{p.name} failed: {short_error(e)} (run {run_id}, partial notebook {output})", run_id, output) from e
        finally:
            if previous is None:
                os.environ.pop(tracking.RUN_ID_ENV, None)
            else:
                os.environ[tracking.RUN_ID_ENV] = previous
        keep_record(output, run)
        run.finish("FINISHED")
    return run_id, output


WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def without_widgets(nb):
    """The executed notebook ``nb`` (changed in place and returned) as a record that reads without a kernel:
    no saved widget state, and no widget view where an output also has another (the explorers' static
    HTML). With the state saved, nbconvert and other viewers draw the widget instead, from a CDN and with
    no kernel behind it: a blank explorer."""
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if WIDGET_VIEW in data and set(data) - {WIDGET_VIEW, "text/plain"}:
                del data[WIDGET_VIEW]
    return nb


def keep_record(output: Path, run) -> Path:
    """Rewrite the executed notebook ``output`` ``without_widgets``, render it as HTML beside it (the
    notebook itself is megabytes of JSON in MLflow's artifact view) and log both under ``notebook/``;
    returns the HTML file."""
    import nbformat
    from nbconvert import HTMLExporter

    nb = without_widgets(nbformat.read(output, as_version=4))
    nbformat.write(nb, output)
    page = output.with_suffix(".html")
    page.write_text(HTMLExporter().from_notebook_node(nb)[0], encoding="utf-8")
    run.log_artifact(output, "notebook")
    run.log_artifact(page, "notebook")
    return page


@contextlib.contextmanager
def heartbeat(run, every: float = tracking.HEARTBEAT_S):
    """For the duration, a thread renews the run's heartbeat tag every ``every`` seconds: a run whose
    runner dies on another host without a word is then found by its silence (``tracking.death``)."""
    done = threading.Event()

    def beat():
        while True:
            try:
                run.set_tags({tracking.HEARTBEAT_TAG: tracking.heartbeat_now()})
            except Exception:  # noqa: BLE001 - a missed beat is no reason to stop the run; the next may land
                pass
            if done.wait(every):
                return

    thread = threading.Thread(target=beat, name="prmlab-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


# ----------------------------------------------------------------------------------------------
# Progress in the terminal while a notebook runs.


class CellProgress:
    """papermill hooks that write one line per code cell as it starts: time since the kernel started,
    cell k of n, the section (the last markdown heading) and the cell's first line of code."""

    def __init__(self, stream):
        self.stream = stream
        self.total = self.count = 0
        self.section = ""
        self.t0 = time.monotonic()

    def on_notebook_start(self, notebook, **_):
        self.total = sum(cell.cell_type == "code" for cell in notebook.cells)
        self.t0 = time.monotonic()

    def on_cell_start(self, cell, **_):
        if cell.cell_type == "markdown":  # sections are "## ..." headings; "# ..." is the notebook's title
            heading = next((ln.lstrip("#").strip() for ln in cell.source.splitlines() if ln.startswith("##")), None)
            self.section = heading or self.section

    def on_cell_execute(self, cell, **_):
        self.count += 1
        tags = cell.metadata.get("tags", [])
        code = next((ln.strip() for ln in cell.source.splitlines() if ln.strip() and not ln.lstrip().startswith("#")), "")
        if "parameters" in tags or "injected-parameters" in tags:
            code = "injected parameters" if "injected-parameters" in tags else "parameters"
        minutes, seconds = divmod(int(time.monotonic() - self.t0), 60)
        where = f"{self.section} | " if self.section else ""
        line = f"[{minutes:02d}:{seconds:02d}] cell {self.count}/{self.total}  {where}{code}"
        self.stream.write(line[:160] + "\n")
        self.stream.flush()


# Kernel arguments for a run that shows progress: the kernel switches its bars to text at start-up, and
# leaves its own stderr alone (by default ipykernel copies it into the notebook), so the bars reach the
# terminal without cluttering the executed notebook. Its log shows errors only (not the warning that a
# kernel on loopback talks TCP unencrypted).
KERNEL_CONSOLE_PROGRESS = (
    "--IPKernelApp.log_level=ERROR",
    "--IPKernelApp.capture_fd_output=False",
    "--IPKernelApp.exec_lines=from prmlab.runner import console_progress_bars; console_progress_bars()",
)


def console_progress_bars() -> None:
    """Make ``tqdm.auto`` bars text on this process's own stderr (``sys.__stderr__``).

    Run at the start of a kernel started by ``prmlab run``: its stderr is the one of ``prmlab run``,
    which it inherits, so the library's bars (which would be widgets only a browser draws) show in the
    terminal. A terminal gets the usual redrawn line; a log file gets one line per update, at most
    every 30 s."""
    import tqdm.auto
    from tqdm.asyncio import tqdm as text_tqdm

    stream = sys.__stderr__
    terminal = stream.isatty()

    class ConsoleTqdm(text_tqdm):
        def __init__(self, *args, **kwargs):
            kwargs.setdefault("file", stream if terminal else _LinePerUpdate(stream))
            if not terminal:
                kwargs.setdefault("mininterval", 30.0)
            super().__init__(*args, **kwargs)

    tqdm.auto.tqdm = ConsoleTqdm
    tqdm.auto.trange = lambda *args, **kwargs: ConsoleTqdm(range(*args), **kwargs)


class _LinePerUpdate:
    """A file for tqdm that writes each redraw (tqdm starts them with a carriage return) as its own line."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, text: str) -> None:
        for part in text.replace("\r", "\n").split("\n"):
            if part.strip():
                self.stream.write(part.rstrip() + "\n")

    def flush(self) -> None:
        self.stream.flush()


def stoppable_kernel_manager(stopping: threading.Event):
    """A kernel manager that kills the kernel at once when the run is being stopped (``stopping`` set).

    A graceful shutdown of a kernel in the middle of a cell races with the cell's reply: ipykernel
    replies on a closed socket and prints a ZMQ traceback ("Socket operation on non-socket"). A
    killed kernel cannot end the child runs it started; the runner ends them instead. A run that ends
    otherwise shuts its idle kernel down gracefully, as before. (jupyter_client is imported here:
    it is slow to load.)"""
    from jupyter_client import AsyncKernelManager

    class StoppableKernelManager(AsyncKernelManager):
        async def shutdown_kernel(self, now: bool = False, restart: bool = False) -> None:
            await super().shutdown_kernel(now=now or stopping.is_set(), restart=restart)

    return StoppableKernelManager


def short_error(e: BaseException) -> str:
    ename, evalue = getattr(e, "ename", None), getattr(e, "evalue", None)
    text = f"{ename}: {evalue}" if ename else f"{type(e).__name__}: {e}"
    return text.strip().splitlines()[0][:500] if text.strip() else type(e).__name__
