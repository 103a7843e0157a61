"""prmlab run / sweep / params: validation before any kernel starts, the tracked run lifecycle, and a
concurrent sweep on one SQLite store."""

import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from prmlab import notebooks, runner, studies, tracking
from prmlab.cli import main
from prmlab.profiles import PROFILES


def prmlab(*args, env=None, cwd=None, timeout=600):
    return subprocess.run([sys.executable, "-m", "prmlab.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, cwd=cwd, timeout=timeout)


def test_notebook_resolution_and_errors():
    assert notebooks.resolve_notebook("00").name == "00_policy_sft.ipynb"
    assert notebooks.resolve_notebook("0").name == "00_policy_sft.ipynb"
    assert notebooks.resolve_notebook("00_policy_sft").name == "00_policy_sft.ipynb"
    with pytest.raises(ValueError, match=r"valid choices: 00 \(00_policy_sft\)"):
        notebooks.resolve_notebook("42")


def test_purpose_is_the_title_without_its_number():
    assert notebooks.purpose(notebooks.resolve_notebook("00")) == "The base policy (supervised fine-tuning)"
    for nb in notebooks.available_notebooks():
        assert notebooks.purpose(nb) and not notebooks.purpose(nb)[:2].isdigit()


def test_runner_and_tracking_do_not_import_each_other():
    import ast
    import inspect

    from prmlab import tracking as tracking_module

    def imported(module):
        tree = ast.parse(inspect.getsource(module))
        return {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module} | {
            alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) for alias in node.names}

    assert "runner" not in imported(tracking_module) and ".runner" not in imported(tracking_module)
    assert "notebooks" in imported(tracking_module) and "notebooks" in imported(runner)


def papermills(path) -> list[tuple]:
    import papermill

    return [(name, p["default"], p["help"]) for name, p in papermill.inspect_notebook(str(path)).items()]


def test_cell_parameters_are_papermills_read_without_papermill(tmp_path):
    """The names a kernel's start_run logs, read with json, ast and tokenize: papermill's, in its order,
    with the same defaults and help."""
    import ast

    for nb in notebooks.available_notebooks():
        theirs = papermills(nb)
        assert notebooks.parameter_names(nb) == [name for name, _, _ in theirs]
        for (name, default, help_), p in zip(theirs, notebooks.cell_parameters(nb)):
            assert (ast.literal_eval(default), help_) == (p.default, p.help), name
    source = 'a = 1  # help\nb: int = 2  # typed\ns = "text"  # a string\nlr = 1e-4\n'
    cells = [nbformat.v4.new_code_cell("x = 0"), nbformat.v4.new_code_cell(source, metadata={"tags": ["parameters"]})]
    kernel = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    nbformat.write(nbformat.v4.new_notebook(cells=cells, metadata=kernel), tmp_path / "p.ipynb")
    assert notebooks.parameter_names(tmp_path / "p.ipynb") == [name for name, _, _ in papermills(tmp_path / "p.ipynb")] == ["a", "b", "s", "lr"]
    assert [(p.default, p.help) for p in notebooks.cell_parameters(tmp_path / "p.ipynb")] == [
        (1, "help"), (2, "typed"), ("text", "a string"), (1e-4, "")]
    nbformat.write(nbformat.v4.new_notebook(cells=cells[:1], metadata=kernel), tmp_path / "none.ipynb")
    with pytest.raises(ValueError, match="no cell tagged 'parameters'"):
        notebooks.parameter_names(tmp_path / "none.ipynb")
    # a kernel that starts its run does not import papermill (about 2 s of nbformat and jsonschema)
    code = ("import sys; from prmlab import notebooks, tracking; notebooks.parameter_names(notebooks.resolve_notebook('00'));"
            "print('papermill' in sys.modules, 'nbformat' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120).stdout
    assert out.split() == ["False", "False"]


def test_unknown_parameter_or_profile_fails_before_any_kernel(mlflow_store, capsys):
    assert main(["run", "00", "-p", "learning_rate", "1"]) == 2
    err = capsys.readouterr().err
    assert "unknown parameter 'learning_rate'" in err and "valid choices:" in err and "sft_steps" in err
    assert main(["run", "00", "--profile", "huge"]) == 2
    assert f"valid choices: {', '.join(PROFILES)}" in capsys.readouterr().err
    assert main(["run", "00", "-p", "sft_steps", "many"]) == 2
    assert "parameter 'sft_steps' takes an integer (default 2000); got 'many'" in capsys.readouterr().err
    assert main(["run", "00", "-p", "mistake_rate", "1.5"]) == 2
    assert "parameter 'mistake_rate' must lie in [0, 1]; got 1.5" in capsys.readouterr().err
    assert main(["run", "00", "-p", "lr", "0"]) == 2
    assert "parameter 'lr' must lie in (0, inf)" in capsys.readouterr().err
    assert main(["sweep", "00", "-g", "nope=1,2"]) == 2
    assert main(["sweep", "00", "-g", "mistake_rate="]) == 2
    assert "grid axis 'mistake_rate=' has an empty value" in capsys.readouterr().err
    assert main(["sweep", "00", "-g", "mistake_rate=0.1,,0.3"]) == 2
    assert main(["sweep", "00", "-g", "mistake_rate=0.1,2"]) == 2
    assert "parameter 'mistake_rate' must lie in [0, 1]; got 2.0" in capsys.readouterr().err
    # nothing was started: no run exists in the store
    assert tracking.client().search_runs([e.experiment_id for e in tracking.client().search_experiments()]) == []


def test_bad_choices_fail_before_any_kernel_naming_the_library_choices(mlflow_store, capsys):
    from prmlab.prm.model import READOUTS
    from prmlab.rl.pure_arms import PURE_ARMS
    from prmlab.rl.credit import PROB_CONVENTIONS

    for args, says in [(["run", "02", "-p", "arms", "verifiable,foo"], f"unknown arms entry 'foo'; valid choices: {', '.join(PURE_ARMS)}"),
                       (["run", "01", "-p", "prm_readout", "xyz"], f"unknown prm_readout 'xyz'; valid choices: {', '.join(READOUTS)}"),
                       (["run", "04", "-p", "scorers", "bogus"], "unknown scorers entry 'bogus'; valid choices: oracle, likelihood, implicit, prm,"),
                       (["run", "04", "-p", "scorers", " , "], "parameter 'scorers' names nothing; valid choices"),
                       (["run", "02", "-p", "reward_convention", "q"], f"valid choices: {', '.join(PROB_CONVENTIONS)}"),
                       (["run", "00", "-p", "profile", "huge"], "unknown profile 'huge'"),
                       (["sweep", "02", "-g", "arms=verifiable,prm-min+bogus"], "unknown arms entry 'prm-min+bogus'")]:
        assert main(args) == 2, args
        assert says in capsys.readouterr().err, args
    assert tracking.client().search_runs([e.experiment_id for e in tracking.client().search_experiments()]) == []


def test_every_choice_parameter_is_checked_and_every_default_is_a_valid_choice():
    """The choices table names declared parameters only; every parameter whose comment lists its
    choices ("a | b") is in it; every notebook's default passes."""
    for study in studies.STUDIES.values():
        for p in study.params:
            p.check(p.default)
            if isinstance(p.default, str) and " | " in p.help:
                assert isinstance(p.allowed, notebooks.Choices), (study.notebook, p.name)


def test_a_missing_upstream_run_is_reported_before_any_kernel(mlflow_store, capsys):
    assert main(["run", "02", "--profile", "smoke"]) == 2
    err = capsys.readouterr().err
    assert "prmlab run 00 --profile smoke" in err and "prmlab run 01 --profile smoke" in err
    tracking.start_run("00_policy_sft", params={"profile": "smoke", "seed": 0}).finish()
    assert main(["run", "02", "--profile", "smoke"]) == 2
    err = capsys.readouterr().err
    assert "prmlab run 01 --profile smoke" in err and "prmlab run 00" not in err
    assert main(["sweep", "04", "--profile", "smoke", "-g", "scorers=oracle,implicit"]) == 2
    err = capsys.readouterr().err
    assert "prmlab run 03 --profile smoke" in err and "prmlab run 01" not in err
    assert main(["run", "01", "--profile", "smoke", "-p", "policy_run_id", "nope"]) == 2
    assert "no run 'nope'" in capsys.readouterr().err
    c = tracking.client()
    assert [r.info.status for r in c.search_runs([e.experiment_id for e in c.search_experiments()])] == ["FINISHED"]
    runner.check_upstream([runner.plan("01", "smoke"), runner.plan("02", "smoke", {"arms": "verifiable,oracle-min"})])


@pytest.mark.parametrize("number, overrides, needs", [
    ("00", {}, []),
    ("01", {}, [("00_policy_sft", None)]),
    ("02", {"arms": "verifiable,oracle-sum,likelihood-min"}, [("00_policy_sft", None)]),
    ("02", {"prm_run_id": "r1", "policy_run_id": "r0"}, [("00_policy_sft", "r0"), ("01_prm_training", "r1")]),
    ("03", {}, [("00_policy_sft", None), ("01_prm_training", None)]),
    ("03", {"prm_run_id": "none"}, [("00_policy_sft", None)]),
    ("04", {"scorers": "oracle,implicit"}, [("00_policy_sft", None), ("03_prime_implicit", None)]),
    ("04", {"scorers": "prm_oracle"}, [("00_policy_sft", None), ("01_prm_training", None)]),
])
def test_upstream_runs_follow_the_notebooks_parameters(number, overrides, needs):
    assert runner.upstream(runner.plan(number, "tiny", overrides)) == needs


def test_report_rejects_an_unknown_profile(mlflow_store, tmp_path, capsys):
    assert main(["report", "--profile", "nope", "--out", str(tmp_path / "r.html")]) == 2
    assert f"unknown profile 'nope'; valid choices: {', '.join(PROFILES)}" in capsys.readouterr().err
    assert not (tmp_path / "r.html").exists()


@pytest.mark.parametrize("raw, default, value", [("3", 1, 3), ("-2", 1, -2), ("0.5", 1.0, 0.5), ("1e-3", 0.1, 0.001),
                                                 ("True", False, True), ("no", True, False), ("x,y", "", "x,y"),
                                                 ("[1, 2]", None, [1, 2])])
def test_values_take_the_type_of_the_default(raw, default, value):
    parsed = notebooks.parse_value("unranged", raw, default)
    assert parsed == value and type(parsed) is type(value)


@pytest.mark.parametrize("raw, default, says", [("abc", 1, "an integer"), ("1.5", 1, "an integer"),
                                                ("fast", 0.1, "a number"), ("maybe", True, "a boolean (true or false)")])
def test_badly_typed_values_say_what_the_parameter_takes(raw, default, says):
    with pytest.raises(ValueError, match=f"parameter 'p' takes {re.escape(says)} \\(default {default!r}\\); got '{raw}'"):
        notebooks.parse_value("p", raw, default)


def test_ranges_include_and_exclude_their_bounds():
    share, positive, top_p = notebooks.SHARE, notebooks.POSITIVE, studies.POLICY_SFT.declared["top_p"].allowed
    assert [x in share for x in (-0.01, 0, 0.5, 1, 1.01, float("nan"), True)] == [False, True, True, True, False, False, False]
    assert [x in positive for x in (0, 1e-9, 1e9)] == [False, True, True]
    assert [x in top_p for x in (0, 0.3, 1.0)] == [False, True, True]
    assert (str(share), str(positive), str(top_p), str(notebooks.AT_LEAST_1)) == ("[0, 1]", "(0, inf)", "(0, 1]", "[1, inf)")
    # every ranged parameter's default lies in its range, in every notebook that declares it
    for study in studies.STUDIES.values():
        for p in study.params:
            p.check(p.default)


@pytest.mark.parametrize("profile", PROFILES)
def test_every_profile_plans_every_notebook(profile):
    """Every value a profile sets is declared by the notebook and lies in its known range."""
    for nb in notebooks.available_notebooks():
        assert runner.plan(nb.stem, profile).parameters["profile"] == profile


def test_profiles_overlay_and_parameter_types():
    plan = runner.plan("00", "smoke", [("lr", "0.01"), ("arch", "qwen2"), ("sft_steps", "3")])
    assert plan.parameters["profile"] == "smoke"
    assert plan.parameters["n_eval"] == 12  # from the smoke overlay
    assert plan.parameters["lr"] == 0.01 and plan.parameters["sft_steps"] == 3 and plan.parameters["arch"] == "qwen2"
    assert all(p.help for s in studies.STUDIES.values() for p in s.params), "every parameter needs a comment"


def test_params_command_lists_help(capsys):
    assert main(["params", "00"]) == 0
    out = capsys.readouterr().out
    assert "mistake_rate" in out and "share of SFT solutions" in out


def test_failing_notebook_leaves_a_failed_run_with_partial_notebook(mlflow_store, tmp_path):
    res = prmlab("run", "00", "--profile", "smoke", "-p", "min_ops", "6", cwd=tmp_path)  # max_ops is 5
    assert res.returncode == 1
    assert "FAILED" in res.stderr and "need 1 <= min_ops <= max_ops" in res.stderr
    run_id = next(ln.split(": ")[1] for ln in res.stdout.splitlines() if ln.startswith("run_id: "))
    c = tracking.client()
    r = c.get_run(run_id)
    assert r.info.status == "FAILED"
    assert "min_ops" in r.data.tags["prmlab.error"]
    local = c.download_artifacts(run_id, "notebook", str(tmp_path / "dl"))
    nb_file = next(Path(local).glob("*.ipynb"))
    nb = nbformat.read(nb_file, as_version=4)
    errors = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    assert errors and errors[0]["ename"] == "ValueError"
    with pytest.raises(tracking.NoRunError):  # a failed run is never used by later notebooks
        tracking.latest_run("00_policy_sft", "smoke")
    # the executed notebook stays beside the store it was tracked in (here a temporary one)
    executed = Path(next(ln.split(": ", 1)[1] for ln in res.stdout.splitlines() if ln.startswith("notebook: ")))
    assert executed.parent == tmp_path / "store" / "notebooks" and executed.exists()


PROBE = '''
import time
from prmlab import tracking
run = tracking.start_run("99_probe", globals())
for i in range(20):
    run.log_metrics({"probe/value": x * i}, step=i)
run.log_dict({"x": x}, "probe.json")
if child:
    run.child("arm")
time.sleep(sleep)
if fail:
    raise RuntimeError("probe asked to fail")
run.finish()
'''


@pytest.fixture
def probe_root(tmp_path, monkeypatch):
    """A project root with one fast notebook, so a concurrent sweep costs seconds, not minutes."""
    root = tmp_path / "proj"
    (root / "notebooks").mkdir(parents=True)
    (root / "lib" / "prmlab").mkdir(parents=True)
    (root / "pyproject.toml").write_text("[project]\nname = 'prmlab'\n")
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("profile = \"tiny\"  # parameter set\nseed = 0  # seed\nx = 1.0  # a value\nfail = False  # raise at the end\nsleep = 0.0  # seconds to wait before the end\nchild = False  # open a child run before the wait\n")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(PROBE)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, root / "notebooks" / "99_probe.ipynb")
    # a notebook with a section and a progress bar, as the library's long loops have
    bars = nbformat.v4.new_notebook(metadata=nb.metadata)
    params = nbformat.v4.new_code_cell("profile = \"tiny\"  # parameter set\nseed = 0  # seed\nn = 3  # loop length\n")
    params.metadata["tags"] = ["parameters"]
    bars.cells = [nbformat.v4.new_markdown_cell("# 98 · Bars"), params, nbformat.v4.new_markdown_cell("## Looping"),
                  nbformat.v4.new_code_cell("import time\nfrom tqdm.auto import tqdm\nfor i in tqdm(range(n), desc='loop'):\n"
                                            "    time.sleep(0.2)\nprint('looped', n)")]
    nbformat.write(bars, root / "notebooks" / "98_bars.ipynb")
    monkeypatch.setenv("PRMLAB_ROOT", str(root))
    return root


def _executed(res) -> Path:
    return Path(next(ln.split(": ", 1)[1] for ln in res.stdout.splitlines() if ln.startswith("notebook: ")))


def test_run_shows_each_cell_and_the_progress_bars_of_the_kernel(mlflow_store, probe_root):
    res = prmlab("run", "98", "-p", "n", "4")
    assert res.returncode == 0, res.stdout + res.stderr
    lines = res.stderr.splitlines()
    cells = [ln for ln in lines if " cell " in ln]
    assert [ln.split("] ", 1)[1] for ln in cells] == [
        "cell 1/3  parameters", "cell 2/3  injected parameters", "cell 3/3  Looping | import time"]
    assert all(re.fullmatch(r"\[\d\d:\d\d\] .*", ln) for ln in cells)
    # not a terminal (a log file): each bar update on a line of its own, the last one complete
    assert any(re.fullmatch(r"loop: 100%\|#+\| 4/4 .*", ln) for ln in lines), res.stderr
    assert not any("\r" in ln for ln in lines)
    assert lines.index(cells[-1]) < next(i for i, ln in enumerate(lines) if ln.startswith("loop:"))
    # the bars stay out of the executed notebook; what the cell printed is in it
    nb = nbformat.read(_executed(res), as_version=4)
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    assert "".join(o.get("text", "") for o in outputs) == "looped 4\n"
    assert not any("widget" in str(o.get("data", {})) for o in outputs)


def test_run_in_a_terminal_redraws_the_bar_in_place(mlflow_store, probe_root):
    import pty

    import threading

    leader, follower = pty.openpty()
    seen = []

    def read():  # drain the terminal while the run writes to it (a full pty buffer would block the run)
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # every writer has closed the terminal
                return
            if not chunk:
                return
            seen.append(chunk)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        proc = subprocess.Popen([sys.executable, "-m", "prmlab.cli", "run", "98"], stdout=subprocess.PIPE, stderr=follower,
                                text=True)
        os.close(follower)
        out, _ = proc.communicate(timeout=300)
        reader.join(timeout=30)
    finally:
        os.close(leader)
    text = b"".join(seen).decode()
    assert proc.returncode == 0, out + text
    assert "cell 3/3  Looping" in text and "\rloop:  33%" in text and "\rloop: 100%" in text


def test_quiet_run_shows_no_progress(mlflow_store, probe_root):
    res = prmlab("run", "98", "--quiet")
    assert res.returncode == 0, res.stdout + res.stderr
    assert " cell " not in res.stderr and "loop:" not in res.stderr
    assert "run_id: " in res.stdout


def test_sweep_runs_the_grid_concurrently_without_losing_a_run(mlflow_store, probe_root):
    res = prmlab("sweep", "99", "-g", "x=1,2", "--seeds", "2", "--jobs", "2", timeout=900)  # two rounds of two
    assert res.returncode == 0, res.stdout + res.stderr
    c = tracking.client()
    exp = c.get_experiment_by_name("99_probe")
    runs = c.search_runs([exp.experiment_id])
    assert len(runs) == 4
    assert {r.info.status for r in runs} == {"FINISHED"}
    sweeps = {r.data.tags.get("prmlab.sweep") for r in runs}
    assert len(sweeps) == 1 and None not in sweeps
    assert sorted((r.data.params["x"], r.data.params["seed"]) for r in runs) == sorted(
        (x, s) for x in ("1.0", "2.0") for s in ("0", "1"))
    for r in runs:
        assert len(c.get_metric_history(r.info.run_id, "probe/value")) == 20  # every write landed
    assert len(list((Path(tracking.local_store_path()).parent / "notebooks").glob("99_probe-*.ipynb"))) == 4


def test_sweep_reports_failures(mlflow_store, probe_root):
    res = prmlab("sweep", "99", "-g", "fail=false,true", "--jobs", "2", timeout=600)
    assert res.returncode == 1
    assert "1 finished, 1 failed" in res.stdout
    runs = tracking.client().search_runs([tracking.client().get_experiment_by_name("99_probe").experiment_id])
    assert sorted(r.info.status for r in runs) == ["FAILED", "FINISHED"]


def _sleeping_probe_runs(n: int, proc: subprocess.Popen, timeout: float = 300) -> list:
    """Wait until ``n`` runs of the probe notebook are inside its final sleep; return them."""
    import time

    c = tracking.client()
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"prmlab exited with {proc.returncode} before the probe slept: {out}{err}")
        exp = c.get_experiment_by_name("99_probe")
        runs = c.search_runs([exp.experiment_id]) if exp else []
        sleeping = [r for r in runs if len(c.get_metric_history(r.info.run_id, "probe/value")) == 20]
        if len(sleeping) >= n:
            return sleeping
        time.sleep(0.5)
    raise AssertionError(f"fewer than {n} probe runs started")


def _wait_for_child(c, run, proc: subprocess.Popen, timeout: float = 120) -> None:
    import time

    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"prmlab exited with {proc.returncode} before the probe opened its child run")
        if c.search_runs([run.info.experiment_id], f"tags.`mlflow.parentRunId` = '{run.info.run_id}'"):
            return
        time.sleep(0.2)
    raise AssertionError("the probe opened no child run")


@pytest.mark.parametrize("signame, code, error", [("SIGTERM", 143, "SIGTERM"), ("SIGINT", 130, "KeyboardInterrupt")])
def test_an_interrupted_run_ends_killed_with_its_partial_notebook(mlflow_store, probe_root, tmp_path, signame, code, error):
    """Ctrl-C, or SIGTERM (a scheduler's time limit, a closed terminal), must not leave the run RUNNING."""
    import signal

    tracking.experiment_id("99_probe")  # the store exists before two processes use it (its creation is not concurrent-safe)
    proc = subprocess.Popen([sys.executable, "-m", "prmlab.cli", "run", "99", "-p", "sleep", "120", "-p", "child", "true"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    [run] = _sleeping_probe_runs(1, proc)
    c = tracking.client()
    _wait_for_child(c, run, proc)  # the probe opens its child after its last metric: signal only once it exists
    proc.send_signal(getattr(signal, signame))
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == code, out + err
    assert "KILLED" in err and f"run_id: {run.info.run_id}" in out
    assert "Traceback" not in err and "ZMQError" not in err, err  # the kernel stops quietly
    r = c.get_run(run.info.run_id)
    assert r.info.status == "KILLED"
    assert error in r.data.tags["prmlab.error"]
    [child] = c.search_runs([r.info.experiment_id], f"tags.`mlflow.parentRunId` = '{run.info.run_id}'")
    assert child.info.status == "KILLED" and "parent run was stopped" in child.data.tags["prmlab.error"]
    local = c.download_artifacts(run.info.run_id, "notebook", str(tmp_path / "dl"))
    nb = nbformat.read(next(Path(local).glob("*.ipynb")), as_version=4)
    assert "run = tracking.start_run" in "".join(cell.source for cell in nb.cells)


def test_a_terminated_sweep_stops_its_runs_and_starts_no_more(mlflow_store, probe_root):
    import signal

    tracking.experiment_id("99_probe")  # the store exists before two processes use it
    proc = subprocess.Popen([sys.executable, "-m", "prmlab.cli", "sweep", "99", "-g", "x=1,2,3", "-p", "sleep", "120",
                             "--jobs", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _sleeping_probe_runs(2, proc)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, out + err
    assert "interrupted" in err and out.count("KILLED") == 2
    c = tracking.client()
    runs = c.search_runs([c.get_experiment_by_name("99_probe").experiment_id])
    assert [r.info.status for r in runs] == ["KILLED", "KILLED"]  # the third grid point never started


def test_the_heartbeat_beats_while_its_block_runs_and_stops_after():
    import time

    beats = []

    class Recorder:
        def set_tags(self, tags):
            beats.append(tags[tracking.HEARTBEAT_TAG])

    with runner.heartbeat(Recorder(), every=0.05):
        time.sleep(0.5)
    assert len(beats) >= 3 and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", beats[-1])
    count = len(beats)
    time.sleep(0.2)
    assert len(beats) == count


def test_a_run_killed_without_a_word_is_ended_killed_by_the_next_command(mlflow_store, probe_root, capsys):
    """kill -9 of `prmlab run` (or the OOM killer) leaves no one to end its run: the next command does."""
    import signal
    import socket

    import psutil

    tracking.experiment_id("99_probe")  # the store exists before two processes use it
    proc = subprocess.Popen([sys.executable, "-m", "prmlab.cli", "run", "99", "-p", "sleep", "120", "-p", "child", "true"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    [run] = _sleeping_probe_runs(1, proc)
    c = tracking.client()
    _wait_for_child(c, run, proc)
    tags = c.get_run(run.info.run_id).data.tags
    assert (tags[tracking.HOST_TAG], tags[tracking.PID_TAG]) == (socket.gethostname(), str(proc.pid))
    assert tracking.HEARTBEAT_TAG in tags
    kernels = psutil.Process(proc.pid).children(recursive=True)
    proc.kill()  # SIGKILL: no handler runs
    proc.communicate(timeout=60)
    try:
        assert c.get_run(run.info.run_id).info.status == "RUNNING"  # what it stayed, forever, before
        assert main(["notebooks"]) == 0
        err = capsys.readouterr().err
        assert f"run {run.info.run_id} was left RUNNING; ended KILLED: its process {proc.pid}" in err
        r = c.get_run(run.info.run_id)
        assert r.info.status == "KILLED" and "died without ending the run" in r.data.tags["prmlab.error"]
        [child] = c.search_runs([r.info.experiment_id], f"tags.`mlflow.parentRunId` = '{run.info.run_id}'")
        assert child.info.status == "KILLED"
    finally:  # the orphaned kernel exits once it sees its parent gone; make sure of it
        for k in psutil.wait_procs(kernels, timeout=30)[1]:
            k.send_signal(signal.SIGKILL)
