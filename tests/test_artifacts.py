"""One API to log and load models of every kind through MLflow: round trips keep what was logged, and
each way of asking for something that is not there gets an error that says what to do."""

import shutil

import numpy as np
import pytest
import torch

from prmlab import artifacts, tracking
from prmlab.models import read_extra
from prmlab.prm.model import ProcessRewardModel


def finished_run(notebook: str, profile: str = "smoke"):
    return tracking.Run(tracking.create_run(notebook, profile, 0))


@pytest.fixture
def prm(tiny_policy, char_tokenizer):
    model = ProcessRewardModel.from_policy(tiny_policy, char_tokenizer)
    torch.nn.init.normal_(model.head.weight, std=0.5)
    return model


def test_a_policy_round_trip_keeps_its_outputs_and_config(mlflow_store, tiny_policy, char_tokenizer):
    run = finished_run("00_policy_sft")
    artifacts.log_model(run, "policy", tiny_policy, kind="policy", tokenizer=char_tokenizer, config={"sft": {"steps": 3}})
    run.finish()
    loaded = artifacts.load_model("00_policy_sft", "policy", kind="policy", profile="smoke", device="cpu")
    model, tok, found = loaded  # unpacks like a tuple ...
    assert loaded.run is found and found.info.run_id == run.id  # ... and has names
    ids = torch.tensor([char_tokenizer("Q: 1 +2\n").input_ids])
    assert tok("Q: 1 +2\n").input_ids == ids[0].tolist()
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, tiny_policy(ids).logits)
    assert read_extra(artifacts.download(found, "policy")) == {"sft": {"steps": 3}}


def test_an_untrained_pretrained_policy_is_logged_by_reference(mlflow_store, tiny_policy, char_tokenizer, tmp_path,
                                                               monkeypatch):
    from prmlab.models import save_pretrained

    save_pretrained(tiny_policy, char_tokenizer, tmp_path / "hub" / "tiny")
    monkeypatch.chdir(tmp_path)  # a relative path is recorded absolute: later kernels start elsewhere
    run = finished_run("00_policy_sft")
    artifacts.log_model(run, "policy", tiny_policy, kind="policy", tokenizer=char_tokenizer, config={"sft": {"steps": 0}},
                        pretrained="hub/tiny")
    run.finish()
    folder = artifacts.download(tracking.client().get_run(run.id), "policy")
    assert sorted(p.name for p in folder.iterdir()) == [artifacts.PRETRAINED_FILE, "prmlab.json", artifacts.KIND_FILE]
    monkeypatch.chdir("/")
    model, tok, _ = artifacts.load_model("00_policy_sft", "policy", kind="policy", profile="smoke", device="cpu")
    ids = torch.tensor([char_tokenizer("Q: 1 +2\n").input_ids])
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, tiny_policy(ids).logits)
    assert tok("Q: 1 +2\n").input_ids == ids[0].tolist() and read_extra(folder) == {"sft": {"steps": 0}}
    shutil.rmtree(tmp_path / "hub")  # the pretrained model is gone: the error says which it was
    with pytest.raises(OSError, match="logged by reference to the pretrained model .*hub/tiny"):
        artifacts.load_model("00_policy_sft", "policy", kind="policy", profile="smoke", device="cpu")
    with pytest.raises(ValueError, match="only a policy"):
        artifacts.log_model(run, "prm", tiny_policy, kind="prm", pretrained="hub/tiny")


def test_load_policy_gives_00s_policy_with_the_task_it_was_trained_on(mlflow_store, tiny_policy, char_tokenizer):
    from prmlab.tasks import get_task

    run = finished_run("00_policy_sft")
    run.log_params({"dataset": "arith", "seed": 3, "max_ops": 3, "n_train": 40, "misconceptions": "no-carry"})
    artifacts.log_model(run, "policy", tiny_policy, kind="policy", tokenizer=char_tokenizer)
    run.finish()
    policy, tok, found, task = artifacts.load_policy("smoke", n_eval=5, device="cpu")
    same = get_task("arith", n_train=40, n_eval=5, seed=3, max_ops=3, misconceptions="no-carry")
    assert found.info.run_id == run.id and (len(task.train), len(task.eval)) == (40, 5)  # 00's n_train
    assert [p.prompt for p in task.train + task.eval] == [p.prompt for p in same.train + same.eval]
    assert task.cfg.rules == ("no-carry",)  # the oracle names the misconceptions 00's SFT data followed
    assert len(artifacts.load_policy("smoke", run.id, n_eval=2, n_train=7).task.train) == 7


def test_a_prm_round_trip_keeps_its_scores(mlflow_store, prm):
    run = finished_run("01_prm_training")
    artifacts.log_model(run, "prm", prm, kind="prm", config={"labels": "oracle"})
    run.finish()
    loaded, tok, found = artifacts.load_model("01_prm_training", "prm", kind="prm", profile="smoke", device="cpu")
    assert found.info.run_id == run.id and tok is loaded.tokenizer
    args = (["Q: 1 +2\n", "Q: 4 *2\n"], [["1+2=3", "A: 3"], ["4*2=8", "A: 9"]])
    for a, b in zip(prm.score(*args), loaded.score(*args)):
        np.testing.assert_allclose(a, b, atol=1e-6)
    assert read_extra(artifacts.download(found, "prm")) == {"labels": "oracle"}


def test_run_id_takes_that_run_and_must_be_a_run_of_the_notebook(mlflow_store, tiny_policy, char_tokenizer):
    first = finished_run("00_policy_sft")
    artifacts.log_model(first, "policy", tiny_policy, kind="policy", tokenizer=char_tokenizer)
    first.finish()
    latest = finished_run("00_policy_sft")
    latest.finish()
    assert artifacts.find_run("00_policy_sft", "smoke").info.run_id == latest.id
    _, _, found = artifacts.load_model("00_policy_sft", "policy", kind="policy", run_id=first.id, device="cpu")
    assert found.info.run_id == first.id
    with pytest.raises(tracking.NoRunError, match="is a run of notebook 00_policy_sft, not of 01_prm_training"):
        artifacts.load_model("01_prm_training", "prm", kind="prm", run_id=first.id)
    with pytest.raises(tracking.NoRunError, match="no run 'nope'"):
        artifacts.load_model("00_policy_sft", "policy", kind="policy", run_id="nope")


def test_missing_runs_artifacts_and_wrong_kinds_say_what_to_do(mlflow_store, prm, tiny_policy, char_tokenizer):
    with pytest.raises(tracking.NoRunError, match="prmlab run 01 --profile smoke"):
        artifacts.load_model("01_prm_training", "prm", kind="prm", profile="smoke")
    run = finished_run("01_prm_training")
    artifacts.log_model(run, "prm", prm, kind="prm")
    run.finish()
    with pytest.raises(artifacts.MissingArtifactError, match=r"has no artifact 'orm'; it logged: prm\. .*prmlab run 01"):
        artifacts.load_model("01_prm_training", "orm", kind="prm", profile="smoke")
    with pytest.raises(ValueError, match="is a prm, not a policy: load it with kind='prm'"):
        artifacts.load_model("01_prm_training", "prm", kind="policy", profile="smoke")
    with pytest.raises(ValueError, match="unknown model kind 'orm'; valid choices: policy, prm"):
        artifacts.load_model("01_prm_training", "prm", kind="orm", profile="smoke")
    with pytest.raises(ValueError, match="tokenizer"):
        artifacts.log_model(run, "policy", tiny_policy, kind="policy")


def test_download_is_cached_and_never_leaves_a_partial_copy(mlflow_store, tmp_path, monkeypatch):
    from prmlab import paths

    (tmp_path / "root").mkdir()
    monkeypatch.setenv("PRMLAB_ROOT", str(tmp_path / "root"))  # a private runs/cache
    assert paths.runs_dir() == tmp_path / "root" / "runs"
    run = finished_run("00_policy_sft")
    run.log_dict({"a": 1}, "folder/data.json")
    run.finish()
    found = tracking.client().get_run(run.id)
    path = artifacts.download(found, "folder")
    assert (path / "data.json").read_text().strip().startswith("{")
    assert path == tmp_path / "root" / "runs" / "cache" / run.id / "folder"
    assert artifacts.download(found, "folder") == path  # from the cache
    with pytest.raises(artifacts.MissingArtifactError, match="it logged: folder/data.json"):
        artifacts.download(found, "folder/other.json")
    leftovers = [p for p in (path.parent).iterdir() if p.name != "folder"]
    assert leftovers == []  # the temporary download folder is gone


def test_a_new_kind_plugs_in(mlflow_store, tmp_path):
    saved = {}

    def save(model, tokenizer, folder):
        (folder / "weights.txt").write_text(str(model))

    def load(folder, device):
        saved["device"] = device
        return int((folder / "weights.txt").read_text()), None

    artifacts.register_kind("counter", artifacts.Kind(save, load, needs_tokenizer=False))
    try:
        run = finished_run("03_prime_implicit")
        artifacts.log_model(run, "implicit_prm", 41, kind="counter")
        run.finish()
        model, tok, _ = artifacts.load_model("03_prime_implicit", "implicit_prm", kind="counter", profile="smoke",
                                             device="cpu")
        assert (model, tok, saved["device"]) == (41, None, "cpu")
    finally:
        artifacts.KINDS.pop("counter")
