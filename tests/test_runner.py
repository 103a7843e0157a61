"""prmlab run / sweep / params: validation before any kernel starts, the tracked run lifecycle, and a
concurrent sweep on one SQLite store."""

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from prmlab import runner, tracking
from prmlab.cli import main


def prmlab(*args, env=None, cwd=None, timeout=600):
    return subprocess.run([sys.executable, "-m", "prmlab.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, cwd=cwd, timeout=timeout)


def test_notebook_resolution_and_errors():
    assert runner.resolve_notebook("00").name == "00_policy_sft.ipynb"
    assert runner.resolve_notebook("0").name == "00_policy_sft.ipynb"
    assert runner.resolve_notebook("00_policy_sft").name == "00_policy_sft.ipynb"
    with pytest.raises(ValueError, match=r"valid notebooks: 00 \(00_policy_sft\)"):
        runner.resolve_notebook("42")


def test_unknown_parameter_or_profile_fails_before_any_kernel(mlflow_store, capsys):
    assert main(["run", "00", "-p", "learning_rate", "1"]) == 2
    err = capsys.readouterr().err
    assert "unknown parameter 'learning_rate'" in err and "valid parameters:" in err and "sft_steps" in err
    assert main(["run", "00", "--profile", "huge"]) == 2
    assert "valid profiles: tiny, smoke, paper" in capsys.readouterr().err
    assert main(["run", "00", "-p", "sft_steps", "many"]) == 2
    assert "parameter 'sft_steps'" in capsys.readouterr().err
    assert main(["sweep", "00", "-g", "nope=1,2"]) == 2
    # nothing was started: no run exists in the store
    assert tracking.client().search_runs([e.experiment_id for e in tracking.client().search_experiments()]) == []


def test_profiles_overlay_and_parameter_types():
    plan = runner.plan("00", "smoke", [("lr", "0.01"), ("arch", "qwen2"), ("sft_steps", "3")])
    assert plan.parameters["profile"] == "smoke"
    assert plan.parameters["n_eval"] == 12  # from the smoke overlay
    assert plan.parameters["lr"] == 0.01 and plan.parameters["sft_steps"] == 3 and plan.parameters["arch"] == "qwen2"
    declared = runner.notebook_parameters(runner.resolve_notebook("00"))
    assert all(p["help"] for p in declared.values()), "every parameter needs a comment"


def test_params_command_lists_help(capsys):
    assert main(["params", "00"]) == 0
    out = capsys.readouterr().out
    assert "mistake_rate" in out and "share of SFT solutions" in out


def test_failing_notebook_leaves_a_failed_run_with_partial_notebook(mlflow_store, tmp_path):
    res = prmlab("run", "00", "--profile", "smoke", "-p", "arch", "gpt9", cwd=tmp_path)
    assert res.returncode == 1
    assert "FAILED" in res.stderr and "unknown arch 'gpt9'" in res.stderr
    run_id = next(ln.split(": ")[1] for ln in res.stdout.splitlines() if ln.startswith("run_id: "))
    c = tracking.client()
    r = c.get_run(run_id)
    assert r.info.status == "FAILED"
    assert "unknown arch" in r.data.tags["prmlab.error"]
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
    params = nbformat.v4.new_code_cell("profile = \"tiny\"  # parameter set\nseed = 0  # seed\nx = 1.0  # a value\nfail = False  # raise at the end\nsleep = 0.0  # seconds to wait before the end\n")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(PROBE)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, root / "notebooks" / "99_probe.ipynb")
    monkeypatch.setenv("PRMLAB_ROOT", str(root))
    return root


def test_sweep_runs_the_grid_concurrently_without_losing_a_run(mlflow_store, probe_root):
    res = prmlab("sweep", "99", "-g", "x=1,2,3", "--seeds", "2", "--jobs", "2", timeout=900)
    assert res.returncode == 0, res.stdout + res.stderr
    c = tracking.client()
    exp = c.get_experiment_by_name("99_probe")
    runs = c.search_runs([exp.experiment_id])
    assert len(runs) == 6
    assert {r.info.status for r in runs} == {"FINISHED"}
    sweeps = {r.data.tags.get("prmlab.sweep") for r in runs}
    assert len(sweeps) == 1 and None not in sweeps
    assert sorted((r.data.params["x"], r.data.params["seed"]) for r in runs) == sorted(
        (x, s) for x in ("1.0", "2.0", "3.0") for s in ("0", "1"))
    for r in runs:
        assert len(c.get_metric_history(r.info.run_id, "probe/value")) == 20  # every write landed
    assert len(list((Path(tracking.local_store_path()).parent / "notebooks").glob("99_probe-*.ipynb"))) == 6


def test_sweep_reports_failures(mlflow_store, probe_root):
    res = prmlab("sweep", "99", "-g", "fail=false,true", "--jobs", "2", timeout=600)
    assert res.returncode == 1
    assert "1 finished, 1 failed" in res.stdout
    runs = tracking.client().search_runs([tracking.client().get_experiment_by_name("99_probe").experiment_id])
    assert sorted(r.info.status for r in runs) == ["FAILED", "FINISHED"]


def _sleeping_probe_runs(n: int, timeout: float = 300) -> list:
    """Wait until ``n`` runs of the probe notebook are inside its final sleep; return them."""
    import time

    c = tracking.client()
    deadline = time.time() + timeout
    while time.time() < deadline:
        exp = c.get_experiment_by_name("99_probe")
        runs = c.search_runs([exp.experiment_id]) if exp else []
        sleeping = [r for r in runs if len(c.get_metric_history(r.info.run_id, "probe/value")) == 20]
        if len(sleeping) >= n:
            return sleeping
        time.sleep(0.5)
    raise AssertionError(f"fewer than {n} probe runs started")


@pytest.mark.parametrize("signame, code, error", [("SIGTERM", 143, "SIGTERM"), ("SIGINT", 130, "KeyboardInterrupt")])
def test_an_interrupted_run_ends_killed_with_its_partial_notebook(mlflow_store, probe_root, tmp_path, signame, code, error):
    """Ctrl-C, or SIGTERM (a scheduler's time limit, a closed terminal), must not leave the run RUNNING."""
    import signal

    proc = subprocess.Popen([sys.executable, "-m", "prmlab.cli", "run", "99", "-p", "sleep", "120"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    [run] = _sleeping_probe_runs(1)
    c = tracking.client()
    proc.send_signal(getattr(signal, signame))
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == code, out + err
    assert "KILLED" in err and f"run_id: {run.info.run_id}" in out
    r = c.get_run(run.info.run_id)
    assert r.info.status == "KILLED"
    assert error in r.data.tags["prmlab.error"]
    local = c.download_artifacts(run.info.run_id, "notebook", str(tmp_path / "dl"))
    nb = nbformat.read(next(Path(local).glob("*.ipynb")), as_version=4)
    assert "run = tracking.start_run" in "".join(cell.source for cell in nb.cells)


def test_a_terminated_sweep_stops_its_runs_and_starts_no_more(mlflow_store, probe_root):
    import signal

    proc = subprocess.Popen([sys.executable, "-m", "prmlab.cli", "sweep", "99", "-g", "x=1,2,3", "-p", "sleep", "120",
                             "--jobs", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _sleeping_probe_runs(2)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, out + err
    assert "interrupted" in err and out.count("KILLED") == 2
    c = tracking.client()
    runs = c.search_runs([c.get_experiment_by_name("99_probe").experiment_id])
    assert [r.info.status for r in runs] == ["KILLED", "KILLED"]  # the third grid point never started
