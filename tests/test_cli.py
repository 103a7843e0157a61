"""What the `prmlab` command says: help with examples, the notebooks listing, what a profile changes,
where `lab` serves (no kernel, no server started)."""

import re

import pytest

from prmlab import cli, tracking
from prmlab.cli import main
from prmlab.profiles import OVERLAYS


def test_no_subcommand_prints_help_with_examples(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: prmlab") and "examples:" in out
    examples = [ln.split()[:3] for ln in out.split("examples:")[1].splitlines() if ln.strip()]
    assert len(examples) >= 3 and all(e[0] == "prmlab" for e in examples)
    for command in ("run", "sweep", "params", "notebooks", "report", "ui", "lab"):
        assert re.search(rf"^\s+{command}\b", out, re.M), command


@pytest.mark.parametrize("command", ["ui", "lab"])
def test_ui_and_lab_explain_their_options(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps lines at the terminal's width
    assert "stop it with Ctrl-C" in out
    assert "--host HOST address to listen on (default 127.0.0.1: this machine only" in out
    assert re.search(r"--port PORT port to listen on \(default (5000|8888)\)", out)


def test_lab_prints_where_it_serves(monkeypatch, capsys):
    started = []
    monkeypatch.setattr(cli.subprocess, "call", lambda cmd, **kw: started.append(cmd) or 0)
    assert main(["lab", "--port", "8899"]) == 0
    out = capsys.readouterr().out
    assert "JupyterLab on http://127.0.0.1:8899/lab" in out
    [cmd] = started
    assert cmd[cmd.index("--ip") + 1] == "127.0.0.1" and cmd[cmd.index("--port") + 1] == "8899"


def test_notebooks_lists_purpose_duration_and_latest_runs(mlflow_store, capsys):
    assert main(["notebooks"]) == 0  # a fresh store: no runs, and the store is not created by looking
    out = capsys.readouterr().out
    assert "00_policy_sft      The base policy (supervised fine-tuning)" in out
    assert "tiny profile: about 4 min on 2 CPU cores (estimate)" in out and "no runs yet" in out
    assert tracking.local_store_path() is not None and not tracking.local_store_path().exists()
    run = tracking.start_run("00_policy_sft", params={"profile": "smoke", "seed": 0})
    run.finish("FAILED")
    assert main(["notebooks"]) == 0
    out = capsys.readouterr().out
    block = out.split("00_policy_sft", 1)[1].split("01_prm_training", 1)[0]
    assert re.search(rf"latest smoke run: FAILED {run.id}, started \d{{4}}-\d\d-\d\d \d\d:\d\d", block)


def test_params_shows_what_a_profile_changes(capsys):
    assert main(["params", "00", "--profile", "smoke"]) == 0
    lines = capsys.readouterr().out.splitlines()
    name = lambda line: line[2:].split()[0]  # noqa: E731 - after the two-character marker column
    changed = {name(ln) for ln in lines if ln.startswith("* ")}
    assert changed == set(OVERLAYS["00_policy_sft"]["smoke"]) | {"profile"}
    sft = next(ln for ln in lines if name(ln) == "sft_steps")
    assert sft.startswith("* ") and "= 25" in sft and "[smoke; default 2000]" in sft
    mistake = next(ln for ln in lines if name(ln) == "mistake_rate")
    assert mistake.startswith("  ") and "(in [0, 1])" in mistake
    assert main(["params", "00", "--profile", "huge"]) == 2


def test_notebooks_prints_the_measured_duration_of_the_profile_where_there_is_one(mlflow_store, capsys):
    from prmlab.notebooks import TINY_MINUTES

    c = tracking.client()
    finished = tracking.create_run("00_policy_sft", "tiny", 0)
    start = c.get_run(finished).info.start_time
    c.set_terminated(finished, "FINISHED", end_time=start + 150_000)  # 2.5 minutes
    c.set_terminated(tracking.create_run("00_policy_sft", "tiny", 1), "FAILED")  # newer, but not finished
    assert main(["notebooks"]) == 0
    out = capsys.readouterr().out
    assert f"tiny profile: 2.5 min measured (run {finished[:8]}, " in out.split("01_prm_training")[0]
    estimate = TINY_MINUTES["01_prm_training"]
    assert f"tiny profile: about {estimate} min on 2 CPU cores (estimate)" in out.split("01_prm_training")[1]
    assert main(["notebooks", "--profile", "smoke"]) == 0
    assert "smoke profile: duration not measured yet" in capsys.readouterr().out


@pytest.mark.parametrize("args, says", [(["sweep", "02", "-g", "lr=1e-4,3e-4", "--jobs", "0"], "argument --jobs: must lie in [1, inf); got 0"),
                                        (["sweep", "00", "--seeds", "-1"], "argument --seeds: must lie in [0, inf); got -1"),
                                        (["sweep", "00", "--jobs", "two"], "argument --jobs: takes an integer; got 'two'"),
                                        (["ui", "--port", "70000"], "argument --port: must lie in [1, 65535]; got 70000")])
def test_out_of_range_integer_options_are_rejected_with_their_range(args, says, capsys):
    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code == 2 and says in capsys.readouterr().err
