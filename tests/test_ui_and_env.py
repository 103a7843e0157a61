"""`make ui` serves the project's store on loopback; environment.yml and pyproject agree; notebooks are clean."""

import json
import os
import re
import signal
import socket
import subprocess
import time
import tomllib
import urllib.request

import nbformat
import pytest

from prmlab import tracking
from prmlab.paths import project_root

ROOT = project_root()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_make_ui_serves_the_store_on_loopback(mlflow_store):
    run = tracking.start_run("00_policy_sft", params={"profile": "smoke", "seed": 0})
    run.log_metrics({"eval/pass_at_1": 0.5})
    run.finish()
    port = free_port()
    proc = subprocess.Popen(["make", "-s", "ui", f"PORT={port}"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True, env=os.environ.copy())
    try:
        body = json.dumps({"experiment_ids": [run.client.get_run(run.id).info.experiment_id]}).encode()
        deadline = time.time() + 120
        found = None
        while time.time() < deadline:
            try:
                req = urllib.request.Request(f"http://127.0.0.1:{port}/api/2.0/mlflow/runs/search", data=body,
                                             headers={"Content-Type": "application/json"})
                found = json.loads(urllib.request.urlopen(req, timeout=5).read())
                break
            except OSError:
                if proc.poll() is not None:
                    pytest.fail(f"make ui exited: {proc.stdout.read().decode()}")
                time.sleep(1)
        assert found is not None, "the MLflow UI did not answer on 127.0.0.1"
        ids = [r["info"]["run_id"] for r in found.get("runs", [])]
        assert ids == [run.id]
        page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10).read().decode()
        assert "<html" in page.lower()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def test_ui_binds_loopback_only():
    from prmlab.cli import build_parser, mlflow_ui_command

    args = build_parser().parse_args(["ui"])
    assert args.host == "127.0.0.1"
    cmd = mlflow_ui_command(args.host, 5000)
    assert cmd[cmd.index("--host") + 1] == "127.0.0.1"


def test_environment_yml_agrees_with_pyproject():
    import yaml

    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = env["dependencies"]
    python = [d for d in deps if isinstance(d, str) and d.startswith("python")]
    assert python == ["python=3.11"]
    assert re.fullmatch(r">=3\.11,<3\.12", project["requires-python"].replace(" ", ""))
    pip = next(d["pip"] for d in deps if isinstance(d, dict))
    # the environment installs the project itself, so its dependency list is pyproject's, nothing else
    assert pip == ["-e .[dev]"]
    assert "dev" in project["optional-dependencies"]


def test_readme_gives_the_two_commands_and_ci_calls_make_test():
    readme = (ROOT / "README.md").read_text()
    assert "make demo" in readme and "make test" in readme
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^make test$", ci, re.M)
    assert "torch==2.13.0" in ci


@pytest.mark.parametrize("path", sorted((ROOT / "notebooks").glob("*.ipynb")), ids=lambda p: p.name)
def test_notebooks_are_committed_clean(path):
    nb = nbformat.read(path, as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in nb.cells if c.cell_type == "code")
    for line in tagged[0].source.splitlines():
        if line.strip() and not line.startswith("#"):
            assert "  # " in line, f"parameter without a comment: {line}"
    # papermill must read every parameter (it cannot parse a '=' inside a comment, for instance)
    import ast

    import papermill

    assigned = {t.id for node in ast.parse(tagged[0].source).body for t in getattr(node, "targets", [])}
    assert set(papermill.inspect_notebook(str(path))) == assigned
