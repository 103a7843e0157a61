"""The one scorer syntax: prmlab's own names, or a published PRM as [NAME=]CONVENTION:PATH, parsed once,
checked before any kernel starts, loaded by `prmlab.scorer_artifacts`."""

import numpy as np
import pytest

from prmlab import runner, scorer_artifacts, tracking
from prmlab.cli import main
from prmlab.prm import adapters
from prmlab.scorer_spec import CONVENTIONS, ScorerSpec, check_scorers, parse_scorer, parse_scorers
from stand_ins import save_stand_in


def test_parse_names_and_published_prms():
    assert parse_scorer(" prm_oracle ") == ScorerSpec("prm_oracle")
    assert parse_scorer("qwen-prm:Qwen/Qwen2.5-Math-PRM-7B") == ScorerSpec("Qwen2.5-Math-PRM-7B", "qwen-prm",
                                                                           "Qwen/Qwen2.5-Math-PRM-7B")
    s = parse_scorer("pure=token-classification:/models/PURE PRM/")
    assert (s.name, s.convention, s.path, s.source) == ("pure", "token-classification", "/models/PURE PRM/",
                                                        "token-classification:/models/PURE PRM/")
    assert parse_scorer("prmlab:/runs/a=b").name == "a_b"  # an '=' after the colon belongs to the path
    assert [s.name for s in parse_scorers("oracle, ,qwen-prm:x/y")] == ["oracle", "y"]
    with pytest.raises(ValueError, match=r"scorers \['m'\] are named twice"):
        parse_scorers("qwen-prm:a/m,math-shepherd:b/m")
    assert adapters.CONVENTIONS is CONVENTIONS  # one list of conventions


def test_checks_name_the_choices(tmp_path):
    own = ("oracle", "prm")
    check_scorers(f"oracle,qwen-prm:{tmp_path},math-shepherd:peiyi9979/math-shepherd-mistral-7b-prm", own)
    for text, says in [("bogus", "unknown scorer entry 'bogus'; valid choices: oracle, prm, math-shepherd:PATH, "
                                 "qwen-prm:PATH, token-classification:PATH, prmlab:PATH"),
                       ("qwen:/x", "unknown PRM convention in scorer entry 'qwen:/x' 'qwen'; valid choices: "
                                   "math-shepherd, qwen-prm, token-classification, prmlab"),
                       (f"prmlab:{tmp_path}/missing", f"no such local path '{tmp_path}/missing'"),
                       ("prmlab:./here/and/there", "no such local path './here/and/there'"),
                       ("qwen-prm:", "names no model: write qwen-prm:PATH")]:
        with pytest.raises(ValueError) as e:
            check_scorers(text, own)
        assert says in str(e.value), (text, str(e.value))
    with pytest.raises(ValueError, match="names one scorer"):
        check_scorers("prm,oracle", own, "prm_name", many=False)


def test_the_runner_rejects_bad_scorers_before_any_kernel(mlflow_store, tmp_path, capsys):
    for args, says in [(["run", "04", "-p", "scorers", "oracle,qwen:/x"], "unknown PRM convention"),
                       (["run", "04", "-p", "scorers", f"qwen-prm:{tmp_path}/nope"], "no such local path"),
                       (["run", "02", "-p", "prm_name", "token-classification:./nope"], "no such local path"),
                       (["run", "02", "-p", "prm_name", "bogus"], "unknown prm_name 'bogus'; valid choices: prm, "),
                       (["run", "01", "-p", "scorers", "prm-x"], "unknown scorers entry 'prm-x'")]:
        assert main(args) == 2, args
        assert says in capsys.readouterr().err, args
    assert tracking.client().search_runs([e.experiment_id for e in tracking.client().search_experiments()]) == []


def test_a_published_prm_needs_no_run_of_01(tmp_path):
    published = f"token-classification:{tmp_path}"
    plan = runner.plan("02", "tiny", {"prm_name": published, "arms": "verifiable,prm-min"})
    assert runner.upstream(plan) == [("00_policy_sft", None)]
    plan = runner.plan("04", "tiny", {"scorers": f"oracle,{published}"})
    assert runner.upstream(plan) == [("00_policy_sft", None)]
    assert runner.upstream(runner.plan("04", "tiny", {"scorers": f"prm,{published}"}))[1] == ("01_prm_training", None)


def test_published_prms_load_by_their_convention(tmp_path):
    from prmlab.tasks.arith import ArithTask

    task = ArithTask(n_train=0, n_eval=2, seed=0)
    spec = ",".join(f"{c}:{save_stand_in(c, tmp_path / c)}" for c in ("math-shepherd", "qwen-prm", "token-classification"))
    scorers, sources = scorer_artifacts.load_step_scorers(spec, task, task.eval, None)
    assert list(scorers) == ["math-shepherd", "qwen-prm", "token-classification"]
    assert sources["qwen-prm"] == f"qwen-prm:{tmp_path / 'qwen-prm'}"
    types = (adapters.MathShepherdScorer, adapters.QwenPRMScorer, adapters.TokenClassificationScorer)
    prompts, steps = [p.prompt for p in task.eval], [p.reference_steps() for p in task.eval]
    for scorer, cls in zip(scorers.values(), types):
        assert isinstance(scorer, cls)
        rewards = scorer.score(prompts, steps)
        assert [len(r) for r in rewards] == [len(s) for s in steps] and all(np.all((r > 0) & (r < 1)) for r in rewards)
    assert scorer_artifacts.scorer_tags("p0", sources)["prmlab.prm_run"] == f"math-shepherd:{tmp_path / 'math-shepherd'}"


def test_a_label_file_is_checked_and_made_absolute_before_any_kernel(mlflow_store, tmp_path, monkeypatch, capsys):
    from prmlab.prm.formats import StepwiseRecord, write_stepwise_jsonl
    from prmlab.prm.train import label_sources

    monkeypatch.chdir(tmp_path)
    write_stepwise_jsonl([StepwiseRecord("Q: 1 +2\n", ["1+2=3", "A: 3"], [1.0, 1.0])], tmp_path / "labels.jsonl")
    (tmp_path / "odd.jsonl").write_text('{"text": "Q"}\n')
    plan = runner.plan("01", "tiny", {"label_file": "labels.jsonl", "scorers": "m=prmlab:."})
    assert plan.parameters["label_file"] == str(tmp_path / "labels.jsonl")
    assert plan.parameters["scorers"] == f"m=prmlab:{tmp_path}"  # a relative path means the caller's directory
    for args, says in [(["run", "01", "-p", "label_file", "missing.jsonl"], "parameter 'label_file': no such file"),
                       (["run", "01", "-p", "label_file", "odd.jsonl"], "odd.jsonl line 1: cannot tell the format"),
                       (["run", "01", "-p", "label_format", "trl"], "unknown label_format 'trl'; valid choices: auto, ")]:
        assert main(args) == 2, args
        assert says in capsys.readouterr().err, args
    assert label_sources("mc-hard", "mc-hard", True, has_file=True) == ["mc-hard", "file"]
    with pytest.raises(ValueError, match="label source 'file' needs label_file"):
        label_sources("oracle", "file", True)
