"""MLflow tracking: one run per notebook execution.

Store: ``$MLFLOW_TRACKING_URI`` if set (a team server, or any store URI), else a SQLite file
``runs/mlflow.db`` under the project root with artifacts in ``runs/mlartifacts`` — resolved from the
project root, never from the current directory. For a SQLite store the artifacts go beside the
database file, so a temporary store (tests) keeps its artifacts with it.

A notebook calls ``start_run(notebook, globals())`` after its parameters cell. Executed by
``prmlab run`` (papermill), the run was already created by the runner (``$PRMLAB_RUN_ID``), which
attaches the executed notebook and sets the final status (FINISHED, or FAILED with the partial
notebook). Run interactively in JupyterLab, ``start_run`` creates the run and ``Run.finish()`` ends it;
a run the kernel never finished ends KILLED when the kernel exits (shut down or restarted) or when the
notebook calls ``start_run`` again (it was re-run from the top), so abandoned runs do not stay RUNNING.
"""

from __future__ import annotations

import atexit
import calendar
import json
import math
import os
import re
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse

from .notebooks import parameter_names, purpose, resolve_notebook
from .paths import project_root, runs_dir

RUN_ID_ENV = "PRMLAB_RUN_ID"
TAG_PREFIX = "prmlab."
# Who runs a run: the process that created it (the runner under prmlab run, else the kernel), and the
# runner's heartbeat (UTC, ISO 8601), renewed every HEARTBEAT_S while its kernel runs.
HOST_TAG, PID_TAG, HEARTBEAT_TAG = f"{TAG_PREFIX}host", f"{TAG_PREFIX}pid", f"{TAG_PREFIX}heartbeat"
HEARTBEAT_S = 30
HEARTBEAT_TIMEOUT_S = 900  # generous: a store locked by concurrent runs delays a beat by seconds, not minutes


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{runs_dir() / 'mlflow.db'}"


def artifact_root(uri: str | None = None) -> str | None:
    """Where new experiments keep artifacts: beside a SQLite database; the server's choice otherwise."""
    uri = uri or tracking_uri()
    if uri.startswith("sqlite:///"):
        db = Path(uri[len("sqlite:///") :])
        return (db.parent / "mlartifacts").resolve().as_uri()
    return None


def client():
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from mlflow.tracking import MlflowClient

    uri = tracking_uri()
    if uri.startswith("sqlite:///"):
        Path(uri[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    return MlflowClient(tracking_uri=uri)


NOTE_TAG = "mlflow.note.content"  # the description MLflow's UI shows for an experiment or a run


def experiment_tags(name: str) -> dict[str, str]:
    """A model-development experiment (MLflow 3 otherwise treats it as GenAI work: traces, evaluation
    runs), described by the notebook's purpose."""
    tags = {"mlflow.experimentKind": "custom_model_development"}
    try:
        tags[NOTE_TAG] = purpose(resolve_notebook(name))
    except ValueError:  # not one of the project's notebooks
        pass
    return tags


def experiment_id(name: str, mlflow_client=None) -> str:
    """The id of experiment ``name``, created if missing (safe when two processes race to create it);
    an experiment made before it carried ``experiment_tags`` gets them."""
    from mlflow.exceptions import MlflowException

    c = mlflow_client or client()
    exp = c.get_experiment_by_name(name)
    if exp is None:
        root = artifact_root()
        try:
            return c.create_experiment(name, artifact_location=f"{root}/{name}" if root else None, tags=experiment_tags(name))
        except MlflowException:
            exp = c.get_experiment_by_name(name)  # another process created it first
            if exp is None:
                raise
    if "mlflow.experimentKind" not in exp.tags:
        for key, value in experiment_tags(name).items():
            c.set_experiment_tag(exp.experiment_id, key, value)
    return exp.experiment_id


def git_state() -> dict[str, str]:
    """Commit and dirty flag of the project checkout ('unknown' outside git)."""
    root = project_root()
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        status = subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return {"git_commit": "unknown", "git_dirty": "unknown"}
    if commit.returncode != 0:
        return {"git_commit": "unknown", "git_dirty": "unknown"}
    return {"git_commit": commit.stdout.strip(), "git_dirty": str(bool(status.stdout.strip())).lower()}


def run_name(notebook: str, profile: str, seed) -> str:
    """'<method>-<profile>-seed<seed>', the method being the notebook name without its number."""
    method = notebook.split("_", 1)[1] if "_" in notebook and notebook[:2].isdigit() else notebook
    return f"{method}-{profile}-seed{seed}"


def create_run(notebook: str, profile: str, seed, tags: dict | None = None) -> str:
    """Create a RUNNING run in the notebook's experiment, with the standard tags; returns its id."""
    c = client()
    all_tags = {
        f"{TAG_PREFIX}notebook": notebook,
        f"{TAG_PREFIX}profile": profile,
        f"{TAG_PREFIX}seed": str(seed),
        **{f"{TAG_PREFIX}{k}": v for k, v in git_state().items()},
        HOST_TAG: socket.gethostname(),
        PID_TAG: str(os.getpid()),
        "mlflow.source.name": f"notebooks/{notebook}.ipynb",
        **(tags or {}),
    }
    run = c.create_run(experiment_id(notebook, c), run_name=run_name(notebook, profile, seed), tags=all_tags)
    return run.info.run_id


class Run:
    """Logging into one MLflow run (a thin, explicit wrapper: no global active-run state)."""

    def __init__(self, run_id: str, managed: bool = False):
        self.id = run_id
        self.client = client()
        self.managed = managed  # True when the runner (prmlab run) owns the run's lifecycle

    @property
    def info(self):
        return self.client.get_run(self.id).info

    @property
    def artifact_uri(self) -> str:
        return self.info.artifact_uri

    def log_params(self, params: dict) -> None:
        from mlflow.entities import Param

        items = [Param(str(k), _param_value(v)) for k, v in params.items()]
        for i in range(0, len(items), 90):  # MLflow caps params per batch at 100
            _retry(lambda: self.client.log_batch(self.id, params=items[i : i + 90]))

    def log_metrics(self, metrics: dict, step: int | None = None) -> None:
        """Log metrics (NaN and None are skipped); keys pass through ``metric_key``."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(metric_key(k), float(v), now, step or 0) for k, v in metrics.items()
                 if v is not None and v == v]
        for i in range(0, len(items), 900):
            _retry(lambda: self.client.log_batch(self.id, metrics=items[i : i + 900]))

    def log_metric(self, key: str, value: float, step: int | None = None) -> None:
        self.log_metrics({key: value}, step)

    def set_tags(self, tags: dict) -> None:
        from mlflow.entities import RunTag

        tags = {k: rounded(v) for k, v in tags.items()}  # shown as text: 0.12, not 0.12000000000000005
        _retry(lambda: self.client.log_batch(self.id, tags=[RunTag(str(k), str(v)) for k, v in tags.items()]))

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        path = Path(path)
        if path.is_dir():
            _retry(lambda: self.client.log_artifacts(self.id, str(path), artifact_path))
        else:
            _retry(lambda: self.client.log_artifact(self.id, str(path), artifact_path))

    def log_text(self, text: str, name: str) -> None:
        with tempfile.TemporaryDirectory() as d:
            f = Path(d) / Path(name).name
            f.write_text(text)
            self.log_artifact(f, str(Path(name).parent) if Path(name).parent != Path(".") else None)

    def log_dict(self, data, name: str) -> None:
        self.log_text(json.dumps(data, indent=2, sort_keys=True, default=str), name)

    def log_table(self, rows: list[dict], name: str) -> None:
        """``rows`` as MLflow's table artifact ``<name>.json`` (the UI shows it as a table), floats to 4
        significant digits (`rounded`)."""
        import pandas as pd

        _retry(lambda: self.client.log_table(self.id, pd.DataFrame(rounded(rows)), f"{name}.json"))

    def log_figure(self, fig, name: str) -> None:
        """A plotly figure as ``figures/<name>.html`` (interactive, with plotly.js inside: it opens
        offline, in MLflow's artifact view too, at about 5 MB a figure) and ``figures/<name>.json``
        (the figure itself: reports rebuild it)."""
        with tempfile.TemporaryDirectory() as d:
            # inlined, not beside the figure once per run: MLflow shows an HTML artifact from a blob URL,
            # from which no relative script path resolves
            fig.write_html(Path(d) / f"{name}.html", include_plotlyjs=True, full_html=True)
            (Path(d) / f"{name}.json").write_text(fig.to_json())
            self.log_artifact(d, "figures")

    def child(self, name: str, params: dict | None = None, seed=None) -> "Run":
        """A nested run under this one (e.g. one arm of an experiment), in the same experiment, with this
        run's prmlab tags: the MLflow UI groups it under its parent and compares arms side by side.
        It is named ``name`` (and ``seed``: "prm-min · seed 0"), not after its parent, so that the UI's
        narrow name column tells the arms apart; tagged ``prmlab.arm`` (and ``prmlab.seed``).
        End it with ``finish()``; a child left unfinished ends KILLED with its process, like any run."""
        parent = self.client.get_run(self.id)
        tags = {k: v for k, v in parent.data.tags.items() if k.startswith(TAG_PREFIX) and k != HEARTBEAT_TAG}
        tags |= {"mlflow.parentRunId": self.id, f"{TAG_PREFIX}arm": name}
        if seed is not None:
            tags[f"{TAG_PREFIX}seed"] = str(seed)
        run_name = name if seed is None else f"{name} · seed {seed}"
        created = self.client.create_run(parent.info.experiment_id, run_name=run_name, tags=tags)
        run = Run(created.info.run_id)
        _unfinished[run.id] = run
        if params:
            run.log_params(params)
        return run

    def end_running_children(self, reason: str) -> None:
        """End KILLED, saying why in a tag, every child run of this run still RUNNING (the process that
        ran them was killed before it could end them)."""
        filt = f"tags.`mlflow.parentRunId` = '{self.id}' and attributes.status = 'RUNNING'"
        for found in self.client.search_runs([self.info.experiment_id], filt):
            child = Run(found.info.run_id)
            child.set_tags({f"{TAG_PREFIX}error": reason})
            child.finish("KILLED")

    def set_headline(self, lines: list[str]) -> None:
        """The run's headline read-out (one sentence per claim: held or not, by how much) as its
        description: the MLflow UI shows it on the run's page and ``prmlab report`` in its headline box."""
        self.set_tags({NOTE_TAG: "\n".join(f"- {line}" for line in lines)})

    def finish(self, status: str = "FINISHED") -> None:
        """End the run. Under ``prmlab run`` the runner ends it after attaching the notebook."""
        if not self.managed:
            _retry(lambda: self.client.set_terminated(self.id, status))
            _unfinished.pop(self.id, None)


# Runs this process created with start_run and has not finished (interactive notebooks only).
_unfinished: dict[str, Run] = {}


def _end_unfinished(reason: str) -> None:
    """End every run this process started and never finished as KILLED, saying why in a tag."""
    for run in list(_unfinished.values()):
        try:
            run.set_tags({f"{TAG_PREFIX}error": reason})
            run.finish("KILLED")
        except Exception:  # noqa: BLE001 - best effort: the store may be gone at exit
            _unfinished.pop(run.id, None)


atexit.register(_end_unfinished, "the process exited before run.finish()")


def start_run(notebook: str, namespace: dict | None = None, params: dict | None = None) -> Run:
    """The MLflow run of this notebook execution, with every notebook parameter logged.

    ``namespace`` is the notebook's ``globals()``: the parameters cell of ``notebooks/<notebook>.ipynb``
    names the parameters and their current values are read from it (injected values included).
    """
    if params is None:
        names = parameter_names(resolve_notebook(notebook))
        namespace = namespace or {}
        params = {k: namespace[k] for k in names if k in namespace}
    run_id = os.environ.get(RUN_ID_ENV)
    if run_id:
        run = Run(run_id, managed=True)
    else:
        _end_unfinished("superseded: start_run was called again before run.finish()")
        run = Run(create_run(notebook, str(params.get("profile", "tiny")), params.get("seed", 0)))
        _unfinished[run.id] = run
    run.log_params(params)
    return run


def metric_key(name: str) -> str:
    """``name`` with the characters MLflow refuses in metric names (anything but letters, digits and
    ``_ - . space : /``) replaced by ``_``: e.g. "bon/PRM (min)" -> "bon/PRM _min_"."""
    return re.sub(r"[^A-Za-z0-9_\-. :/]", "_", name)


def rounded(value, digits: int = 4):
    """``value`` for display: every float in it (in lists, tuples and dict values too) to ``digits``
    significant digits (0.12000000000000005 -> 0.12); anything else as it is. Metrics keep full precision."""
    if isinstance(value, float) and math.isfinite(value):
        return float(f"{value:.{digits}g}")
    if isinstance(value, dict):
        return {k: rounded(v, digits) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(rounded(v, digits) for v in value)
    return value


PARAM_DIGITS = 12  # a parameter keeps every digit a person would type, without the float noise of arithmetic


def _param_value(v) -> str:
    s = v if isinstance(v, str) else json.dumps(rounded(v, PARAM_DIGITS), default=str)
    return s[:6000]


def _retry(fn, attempts: int = 8):
    """Retry store writes that hit a locked SQLite database (two runs writing at once)."""
    from mlflow.exceptions import MlflowException

    for i in range(attempts):
        try:
            return fn()
        except MlflowException as e:
            if "locked" not in str(e).lower() or i == attempts - 1:
                raise
            time.sleep(0.2 * 2**i)


# ----------------------------------------------------------------------------------------------
# Finding what earlier notebooks produced.


TOP_LEVEL = "tags.`mlflow.parentRunId` IS NULL"  # a notebook's own runs, not the child runs of its arms


class NoRunError(LookupError):
    """No finished run of the notebook that produces what was asked for."""


def latest_run(notebook: str, profile: str | None = None):
    """The latest FINISHED run of ``notebook`` (with ``profile`` if given; a run by id: `artifacts.find_run`)."""
    c = client()
    exp = c.get_experiment_by_name(notebook)
    filt = f"attributes.status = 'FINISHED' and {TOP_LEVEL}"
    if profile:
        filt += f" and tags.`{TAG_PREFIX}profile` = '{profile}'"
    runs = [] if exp is None else c.search_runs([exp.experiment_id], filt, order_by=["attributes.start_time DESC"], max_results=1)
    if not runs:
        number = notebook.split("_", 1)[0]
        prof = f" --profile {profile}" if profile else ""
        raise NoRunError(
            f"no finished run of notebook {notebook}{f' with profile {profile!r}' if profile else ''} "
            f"in the MLflow store {tracking_uri()}. Run it first: prmlab run {number}{prof}"
        )
    return runs[0]


def latest_runs(notebook: str) -> dict:
    """The latest run of ``notebook`` per profile, whatever its status (RUNNING included): profile -> run."""
    c = client()
    exp = c.get_experiment_by_name(notebook)
    if exp is None:
        return {}
    latest = {}
    for run in c.search_runs([exp.experiment_id], TOP_LEVEL, order_by=["attributes.start_time DESC"], max_results=1000):
        latest.setdefault(run.data.tags.get(f"{TAG_PREFIX}profile", "?"), run)
    return latest


_BEAT_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def heartbeat_now(at: float | None = None) -> str:
    """A heartbeat tag's value: the time ``at`` (default now) in UTC, ISO 8601."""
    return time.strftime(_BEAT_FORMAT, time.gmtime(at))


def death(run) -> str | None:
    """Why a RUNNING run has no process left to end it (None if it may still have one): the process
    that created it ran on this host and is gone (``kill -9``, the OOM killer), or its heartbeat stopped
    more than HEARTBEAT_TIMEOUT_S ago (a runner on another host). A run without these tags (started
    before they were recorded) is never judged."""
    tags = run.data.tags
    pid, beat = tags.get(PID_TAG, ""), tags.get(HEARTBEAT_TAG)
    if tags.get(HOST_TAG) == socket.gethostname() and pid.isdigit() and not _alive(int(pid)):
        return f"its process {pid} on {tags[HOST_TAG]} died without ending the run (killed, e.g. kill -9 or out of memory)"
    silent = time.time() - calendar.timegm(time.strptime(beat, _BEAT_FORMAT)) if beat else 0
    if silent > HEARTBEAT_TIMEOUT_S:
        return f"no heartbeat from its process {pid} on {tags.get(HOST_TAG)} since {beat} ({silent / 60:.0f} min)"
    return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        pass
    return True


def end_dead_runs() -> list[tuple[str, str]]:
    """End KILLED, with the reason in ``prmlab.error``, every top-level RUNNING run whose process is gone
    (see ``death``), and its running child runs; returns (run id, reason) of each. A local store that does
    not exist yet is not created."""
    store = local_store_path()
    if store is not None and not store.exists():
        return []
    c = client()
    experiments = [e.experiment_id for e in c.search_experiments()]
    if not experiments:
        return []
    ended = []
    for found in c.search_runs(experiments, f"attributes.status = 'RUNNING' and {TOP_LEVEL}", max_results=1000):
        reason = death(found)
        if reason:
            run = Run(found.info.run_id)
            run.set_tags({f"{TAG_PREFIX}error": reason})
            run.finish("KILLED")
            run.end_running_children(f"the parent run was ended: {reason}")
            ended.append((run.id, reason))
    return ended


def local_store_path(uri: str | None = None) -> Path | None:
    """The SQLite database file behind ``uri`` (None for servers)."""
    uri = uri or tracking_uri()
    parsed = urlparse(uri)
    return Path(uri[len("sqlite:///") :]) if parsed.scheme == "sqlite" else None
