"""Reproduction checks on the tiny profile (minutes each): `make test-slow` / `pytest -m slow`.

Each runs a notebook exactly as a user would (`prmlab run NN`, tiny profile) into a temporary MLflow
store and checks the headline numbers the issues ask for.
"""

import os
import subprocess
import sys

import pytest

from prmlab import tracking

pytestmark = pytest.mark.slow


def run_notebook(number: str, *args: str) -> str:
    res = subprocess.run([sys.executable, "-m", "prmlab.cli", "run", number, *args], capture_output=True, text=True,
                         env=os.environ.copy())
    assert res.returncode == 0, res.stdout + res.stderr
    return next(ln.split(": ")[1] for ln in res.stdout.splitlines() if ln.startswith("run_id: "))




def test_00_base_policy_targets(module_store):
    """SFT trains in at most 3 minutes; pass@1 in [35%, 75%]; pass@16 at least 90%."""
    metrics = tracking.client().get_run(run_notebook("00")).data.metrics
    assert metrics["perf/train_seconds"] <= 180, metrics["perf/train_seconds"]
    assert 0.35 <= metrics["eval/pass_at_1"] <= 0.75, metrics["eval/pass_at_1"]
    assert metrics["eval/pass_at_16"] >= 0.90, metrics["eval/pass_at_16"]
