"""Models as MLflow artifacts: one API to log and load every kind (policies, PRMs, later models).

A notebook logs what it trained with ``log_model(run, name, model, kind=...)``; a later notebook loads it
with ``load_model(notebook, name, kind=...)``, which takes the latest FINISHED run of that notebook and
profile (or the run ``run_id``) and says exactly what to do when there is none.

An artifact folder holds the model as its kind saves it, ``prmlab.json`` (the config that produced it,
read back with ``prmlab.models.read_extra``) and ``prmlab_artifact.json`` (its kind, so that loading a
PRM as a policy is an error that says so). A pretrained policy that 00 did not train is logged by
reference (``pretrained=``): where it came from, not a copy of its weights (gigabytes for a paper-profile
model). A new kind of model (e.g. PRIME's implicit PRM) registers
its save and load functions with ``register_kind``.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, NamedTuple

from . import tracking
from .choices import check_choice
from .paths import runs_dir

KIND_FILE = "prmlab_artifact.json"
CONFIG_FILE = "prmlab.json"
PRETRAINED_FILE = "pretrained.json"  # a policy logged by reference: the hub name, path or GGUF file it loads from


@dataclass(frozen=True)
class Kind:
    """How one kind of model is written into an artifact folder and read back."""

    save: Callable[[Any, Any, Path], None]  # (model, tokenizer, folder)
    load: Callable[[Path, str | None], tuple[Any, Any]]  # (folder, device) -> (model, tokenizer)
    needs_tokenizer: bool = True  # False when the model carries its own (a PRM)


def _save_policy(model, tokenizer, folder: Path) -> None:
    from .models import save_pretrained

    save_pretrained(model, tokenizer, folder)


def _load_policy(folder: Path, device: str | None):
    from .models import load_causal_lm

    reference = folder / PRETRAINED_FILE
    if reference.exists():
        source = json.loads(reference.read_text())["name_or_path"]
        try:
            return load_causal_lm(source, device=device)
        except (OSError, ValueError) as e:  # gone, or no longer a model
            raise OSError(f"the policy of this run was logged by reference to the pretrained model {source!r}, "
                          f"which does not load here: {e}") from e
    return load_causal_lm(folder, device=device)


def _save_prm(prm, tokenizer, folder: Path) -> None:
    prm.save(folder)  # LoRA merged; the PRM saves its own tokenizer


def _load_prm(folder: Path, device: str | None):
    from .prm.model import ProcessRewardModel

    prm = ProcessRewardModel.load(folder, device=device)
    return prm, prm.tokenizer


def _load_implicit_prm(folder: Path, device: str | None):
    from .prm.implicit import ImplicitPRM

    prm = ImplicitPRM.load(folder, device=device)
    return prm, prm.tokenizer


KINDS: dict[str, Kind] = {
    "policy": Kind(_save_policy, _load_policy),  # a transformers causal LM and its tokenizer
    "prm": Kind(_save_prm, _load_prm, needs_tokenizer=False),  # a prmlab.prm.model.ProcessRewardModel
    # PRIME's implicit PRM (notebook 03): pi_phi and pi_ref, prmlab.prm.implicit.ImplicitPRM
    "implicit_prm": Kind(lambda prm, tok, folder: prm.save(folder), _load_implicit_prm, needs_tokenizer=False),
}


def register_kind(name: str, kind: Kind) -> None:
    """Make ``log_model``/``load_model`` handle another kind of model."""
    KINDS[name] = kind


def _kind(name: str) -> Kind:
    return KINDS[check_choice(name, KINDS, "model kind")]


class MissingArtifactError(tracking.NoRunError):
    """The run exists but did not log the artifact asked for."""


class LoadedModel(NamedTuple):
    """What ``load_model`` returns; unpacks as ``model, tokenizer, run``."""

    model: Any  # the policy (a transformers causal LM), the ProcessRewardModel, ...
    tokenizer: Any
    run: Any  # the MLflow run it was logged by (``run.data.params`` are that notebook's parameters)


def log_model(run, name: str, model, *, kind: str, tokenizer=None, config: dict | None = None,
              pretrained: str | None = None) -> None:
    """Save ``model`` of ``kind`` (with ``tokenizer`` where the kind needs one and the ``config`` that
    produced it) as artifact folder ``name`` of the MLflow ``run`` (a ``tracking.Run``).

    ``pretrained``: ``model`` is this pretrained policy (hub name, local path or GGUF file) unchanged;
    the artifact then records where it loads from instead of a copy of its weights (a local path is
    recorded absolute)."""
    from .models import _jsonable

    k = _kind(kind)
    if k.needs_tokenizer and tokenizer is None:
        raise ValueError(f"a {kind} is logged with its tokenizer: pass tokenizer=...")
    if pretrained is not None and kind != "policy":
        raise ValueError(f"only a policy is logged by reference to a pretrained model, not a {kind}")
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d) / name
        folder.mkdir(parents=True)
        if pretrained is None:
            k.save(model, tokenizer, folder)
        else:
            local = Path(pretrained).expanduser()
            source = str(local.resolve()) if local.exists() else pretrained
            (folder / PRETRAINED_FILE).write_text(json.dumps({"name_or_path": source}))
        if config is not None:
            (folder / CONFIG_FILE).write_text(json.dumps(_jsonable(config), indent=2, sort_keys=True))
        (folder / KIND_FILE).write_text(json.dumps({"kind": kind}))
        run.log_artifact(folder, name)


def load_model(notebook: str, name: str, *, kind: str, profile: str | None = None, run_id: str | None = None,
               device: str | None = None) -> LoadedModel:
    """The model of ``kind`` logged as ``name`` by the latest finished run of ``notebook`` with
    ``profile`` (or by the run ``run_id``).

    Raises ``tracking.NoRunError`` saying which notebook to run when there is no such run, and
    ``MissingArtifactError`` (a ``NoRunError``) listing what the run did log when it has no ``name``.
    """
    k = _kind(kind)
    run = find_run(notebook, profile, run_id)
    folder = download(run, name)
    logged = _logged_kind(folder)
    if logged is not None and logged != kind:
        raise ValueError(f"artifact {name!r} of run {run.info.run_id} is a {logged}, not a {kind}: "
                         f"load it with kind={logged!r}")
    model, tokenizer = k.load(folder, device)
    return LoadedModel(model, tokenizer, run)


class PolicyOf00(NamedTuple):
    """What notebooks 01-04 start from (`load_policy`); unpacks as ``policy, tokenizer, run, task``."""

    model: Any  # the policy notebook 00 trained (a transformers causal LM)
    tokenizer: Any
    run: Any  # 00's MLflow run
    task: Any  # the task it was trained on, rebuilt from the run's parameters (`policy_task`)


def load_policy(profile: str | None, run_id: str | None = None, *, n_eval: int, n_train: int | None = None,
                device: str | None = None) -> PolicyOf00:
    """Notebook 00's policy, from its latest finished run of ``profile`` (or the run ``run_id``), with the
    task it was trained on (`policy_task`: ``n_eval`` eval problems, ``n_train`` training problems)."""
    model, tokenizer, run = load_model("00_policy_sft", "policy", kind="policy", profile=profile, run_id=run_id,
                                       device=device)
    return PolicyOf00(model, tokenizer, run, policy_task(run, tokenizer, n_eval=n_eval, n_train=n_train))


def policy_task(run, tokenizer, *, n_eval: int, n_train: int | None = None):
    """The task notebook 00's ``run`` trained its policy on, rebuilt from the run's parameters
    (`prmlab.tasks.task_from_params`: the same splits and prompts) with ``n_eval`` eval problems and
    ``n_train`` training problems (None: as many as 00 trained on)."""
    from .studies import POLICY_SFT
    from .tasks import task_from_params

    params = run.data.params
    if n_train is None:
        n_train = int(params.get("n_train", POLICY_SFT.declared["n_train"].default))
    return task_from_params(params, n_train=n_train, n_eval=n_eval, tokenizer=tokenizer)


def find_run(notebook: str, profile: str | None = None, run_id: str | None = None):
    """The run ``run_id`` (which must be a run of ``notebook``), else the latest finished run of
    ``notebook`` with ``profile``."""
    if not run_id:
        return tracking.latest_run(notebook, profile)
    from mlflow.exceptions import MlflowException

    try:
        run = tracking.client().get_run(run_id)
    except MlflowException as e:
        raise tracking.NoRunError(f"no run {run_id!r} in the MLflow store {tracking.tracking_uri()} "
                                  f"(looking for a run of notebook {notebook})") from e
    of = run.data.tags.get(f"{tracking.TAG_PREFIX}notebook")
    if of is not None and of != notebook:
        raise tracking.NoRunError(f"run {run_id} is a run of notebook {of}, not of {notebook}")
    return run


def download(run, artifact_path: str) -> Path:
    """Local copy of an artifact of ``run``, cached under ``runs/cache/<run id>/``.

    Raises ``MissingArtifactError`` listing the run's artifacts when it has no ``artifact_path``. The
    copy is downloaded beside the cache and moved in whole, so an interrupted download is never
    mistaken for a complete one.
    """
    import mlflow.artifacts

    cache = runs_dir() / "cache" / run.info.run_id
    target = cache / artifact_path
    if target.exists():
        return target
    _check_logged(run, artifact_path)
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as d:
        mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path=artifact_path, dst_path=d,
                                            tracking_uri=tracking.tracking_uri())
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            (Path(d) / artifact_path).rename(target)
        except OSError:  # another process cached the same artifact first
            if not target.exists():
                raise
    return target


def _check_logged(run, artifact_path: str) -> None:
    parent = str(Path(artifact_path).parent)
    parent = None if parent == "." else parent
    logged = [a.path for a in tracking.client().list_artifacts(run.info.run_id, parent)]
    if artifact_path.rstrip("/") not in logged:
        notebook = run.data.tags.get(f"{tracking.TAG_PREFIX}notebook", "?")
        number = notebook.split("_", 1)[0]
        raise MissingArtifactError(
            f"run {run.info.run_id} of notebook {notebook} has no artifact {artifact_path!r}; it logged: "
            f"{', '.join(sorted(logged)) or 'nothing'}. A run of {notebook} that logs it: prmlab run {number}")


def _logged_kind(folder: Path) -> str | None:
    f = folder / KIND_FILE
    return json.loads(f.read_text())["kind"] if f.exists() else None  # runs logged before kinds: unchecked
