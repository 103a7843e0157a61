"""Smoke runs of every notebook through `prmlab run --profile smoke`, in order, into one temporary MLflow
store (later notebooks load what earlier ones logged), from an unrelated working directory; and the
shape every notebook keeps: thin code cells, no committed outputs, views that static viewers can show."""

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from prmlab import artifacts, tracking
from prmlab.paths import notebooks_dir

MAX_CELL_LINES = 15  # code cells (the parameters cell aside) call the library; logic lives there, with tests


def committed_notebooks() -> list[Path]:
    return sorted(notebooks_dir().glob("*.ipynb"))


def code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code" and "parameters" not in c.metadata.get("tags", [])]


def long_cells(nb) -> list[str]:
    """The code cells (the parameters cell aside) over ``MAX_CELL_LINES`` lines."""
    return [f"cell {nb.cells.index(c)}: {len(c.source.splitlines())} lines" for c in code_cells(nb)
            if len(c.source.splitlines()) > MAX_CELL_LINES]


@pytest.mark.parametrize("path", committed_notebooks(), ids=lambda p: p.stem)
def test_notebooks_are_thin_and_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    assert not long_cells(nb), f"{path.name}: code cells over {MAX_CELL_LINES} lines (move the logic into lib/prmlab)"
    assert sum("parameters" in c.metadata.get("tags", []) for c in nb.cells) == 1
    assert all(not c.outputs and c.execution_count is None for c in nb.cells if c.cell_type == "code")
    assert sum(c.cell_type == "markdown" for c in nb.cells) >= len(code_cells(nb)) // 2  # a story between the cells


def test_a_long_code_cell_is_found_and_the_parameters_cell_is_not():
    lines = "x = 1\n" * MAX_CELL_LINES
    params = nbformat.v4.new_code_cell(lines + "y = 2", metadata={"tags": ["parameters"]})
    nb = nbformat.v4.new_notebook(cells=[params, nbformat.v4.new_code_cell(lines), nbformat.v4.new_code_cell(lines + "y = 2")])
    assert long_cells(nb) == [f"cell 2: {MAX_CELL_LINES + 1} lines"]


def static_views(nb) -> tuple[int, int]:
    """Every figure output of an executed notebook has an HTML view (plotly.js inlined in exactly one of
    them) and every explorer shows as its static HTML only: no widget view nor saved widget state, which
    would make nbconvert draw a blank widget; returns (figures, explorers)."""
    figures, explorers, with_js = 0, 0, 0
    assert "widgets" not in nb.metadata
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if "application/vnd.plotly.v1+json" in data:
                figures += 1
                assert "text/html" in data, cell.source
                with_js += "plotly.js v" in data["text/html"]
            if "solution_explorer" in cell.source and out.output_type == "execute_result":
                explorers += 1
                assert "Static view: the first" in data["text/html"], cell.source
                assert "application/vnd.jupyter.widget-view+json" not in data, cell.source
    assert with_js == 1
    return figures, explorers


def printed(nb) -> str:
    return "".join(out.get("text", "") for c in nb.cells for out in c.get("outputs", []) if out.output_type == "stream")


def smoke(number: str, cwd: Path, *overrides: str):
    res = subprocess.run([sys.executable, "-m", "prmlab.cli", "run", number, "--profile", "smoke", *overrides],
                         capture_output=True, text=True, cwd=cwd, env=os.environ.copy(), timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    run_id = next(ln.split(": ")[1] for ln in res.stdout.splitlines() if ln.startswith("run_id: "))
    executed = Path(next(ln.split(": ")[1] for ln in res.stdout.splitlines() if ln.startswith("notebook: ")))
    # kept beside the (temporary) store it was tracked in, whatever the working directory
    assert executed.parent == tracking.local_store_path().parent / "notebooks" and executed.exists()
    assert not (cwd / "mlruns").exists() and not (cwd / "mlflow.db").exists()  # nothing lands in the cwd
    nb = nbformat.read(executed, as_version=4)
    assert any("injected-parameters" in c.metadata.get("tags", []) for c in nb.cells)
    run = tracking.client().get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["profile"] == "smoke"
    return run, nb


def logged(run, path=None) -> set[str]:
    return {a.path for a in tracking.client().list_artifacts(run.info.run_id, path)}


def test_00_policy_sft(module_store, tmp_path):
    run, nb = smoke("00", tmp_path)
    p, m = run.data.params, run.data.metrics
    assert p["sft_steps"] == "25" and p["mistake_rate"] == "0.1"  # profile value, and an untouched default
    assert p["misconceptions"] == "no-carry"
    for key in ("eval/pass_at_1", "eval/pass_at_8", "perf/train_seconds", "train/loss", "model/parameters",
                "eval/first_error/none", "eval/greedy_accuracy", "selfcert/errors"):
        assert key in m, key
    assert len(tracking.client().get_metric_history(run.info.run_id, "eval/pass_at_k")) == 8  # one point per k
    assert {"notebook", "policy", "figures", "error_taxonomy.json"} <= logged(run)
    assert {"figures/pass_at_k.html", "figures/training_curve.html", "figures/errors_by_position.html"} <= logged(run, "figures")
    model, tok, found = artifacts.load_model("00_policy_sft", "policy", kind="policy", profile="smoke", device="cpu")
    assert found.info.run_id == run.info.run_id
    assert static_views(nb) == (5, 1)
    assert "pass@1 is " in printed(nb) and "the target (between 0.35 and 0.75)" in printed(nb)
    executed = Path(nb_path(run))  # the executed notebook, and its HTML rendering beside it
    assert logged(run, "notebook") == {str(executed), str(executed.with_suffix(".html"))}


def nb_path(run) -> str:
    return next(a.path for a in tracking.client().list_artifacts(run.info.run_id, "notebook") if a.path.endswith(".ipynb"))


def test_the_html_record_of_00_shows_its_explorer_in_a_browser(module_store, tmp_path):
    """The HTML rendering logged beside 00's executed notebook, opened in a browser with no internet,
    shows the explorer's first solutions (its static view), as the notebook's own output has them."""
    from headless import dump_dom, require_browser, visible_text

    require_browser()
    run = tracking.latest_run("00_policy_sft", profile="smoke")
    executed = Path(tracking.client().download_artifacts(run.info.run_id, nb_path(run), str(tmp_path)))
    page = Path(tracking.client().download_artifacts(run.info.run_id, nb_path(run).replace(".ipynb", ".html"), str(tmp_path)))
    nb = nbformat.read(executed, as_version=4)
    static = next(out["data"]["text/html"] for c in nb.cells if "solution_explorer" in c.source
                  for out in c.outputs if out.output_type == "execute_result")
    shown = visible_text(dump_dom(page.as_uri(), wait_ms=3000))
    first = visible_text(static)
    assert first.startswith("Static view: the first") and len(first) > 200
    assert first in shown, shown[:3000]


def test_01_prm_training(module_store, tmp_path):
    run, nb = smoke("01", tmp_path)
    m = run.data.metrics
    assert run.data.tags["prmlab.policy_run"] == tracking.latest_run("00_policy_sft", "smoke").info.run_id
    # (AUROC and ProcessBench F1 can be undefined on a smoke run's handful of one-class samples)
    for key in ("label/agreement", "eval/PRM-oracle/step_accuracy", "headline/prm_best_of_n",
                "headline/majority", "train/PRM-mc-hard/loss", "real/oracle/n4", "eval/likelihood/step_accuracy",
                "eval/untrained/step_accuracy", "headline/greedy", "backbone/train/loss"):
        assert key in m, key
    assert {"prm", "prm_oracle", "prm_mc_soft", "orm", "label_quality.json", "real_text_study.json"} <= logged(run)
    assert {"figures/best_of_n.html", "figures/label_quality_vs_cost.html", "figures/best_of_n_picks.html"} <= logged(
        run, "figures")
    prm, _, found = artifacts.load_model("01_prm_training", "prm", kind="prm", profile="smoke", device="cpu")
    assert found.info.run_id == run.info.run_id
    assert static_views(nb)[1] == 1
    assert "the headline (PRM best-of-N beats majority vote)" in printed(nb)
    rewards = prm.score(["Q: 1 +2\n"], [["1+2=3", "A: 3"]])
    assert rewards[0].shape == (2,)


RL_STEP_METRICS = ("eval/accuracy", "eval/accuracy_greedy", "rollout/accuracy", "rollout/steps_per_response",
                   "oracle/wrong_step_share", "oracle/wrong_steps/arithmetic", "train/loss", "train/clip_frac",
                   "train/entropy", "perf/rollout_s")


def nested_runs(run) -> dict:
    """The nested runs (arms) of ``run``, by name ("prm-min · seed 0")."""
    found = tracking.client().search_runs([run.info.experiment_id], f"tags.`mlflow.parentRunId` = '{run.info.run_id}'")
    return {r.info.run_name: r for r in found}


def test_02_pure_min_form(module_store, tmp_path):
    run, nb = smoke("02", tmp_path)
    arms = nested_runs(run)
    assert set(arms) == {f"{a} · seed 0" for a in ("verifiable", "prm-sum", "prm-min", "prm-min+vr", "oracle-sum", "oracle-min")}
    for name, arm in arms.items():
        assert arm.info.status == "FINISHED" and arm.data.params["steps"] == "3" and arm.data.params["seed"] == "0"
        for key in RL_STEP_METRICS:
            assert key in arm.data.metrics, (name, key)
        assert len(tracking.client().get_metric_history(arm.info.run_id, "train/loss")) == 3  # one per RL step
    assert "reward/prm_mean" in arms["prm-min · seed 0"].data.metrics and "reward/prm_mean" not in arms["verifiable · seed 0"].data.metrics
    assert run.data.tags["prmlab.prm_run"] == tracking.latest_run("01_prm_training", "smoke").info.run_id
    m = run.data.metrics
    assert {"headline/sum_form_collapses", "headline/min_form_stable", "headline/min_vr_best",
            "headline/min_form_faster", "headline/prm-min/final_accuracy"} <= set(m)
    assert {"figures/accuracy.html", "figures/wrong_steps.html", "figures/prm_reward.html",
            "figures/arm_summary.html"} <= logged(run, "figures") and "arm_summary.json" in logged(run)
    assert static_views(nb) == (6, 1)
    assert "'min-form trains stably'" in printed(nb)


def test_03_prime_implicit(module_store, tmp_path):
    run, nb = smoke("03", tmp_path)
    arms = nested_runs(run)
    assert set(arms) == {"rloo · seed 0", "prime · seed 0"}
    for key in RL_STEP_METRICS + ("filter/kept_share", "train/rollouts_seen"):
        assert all(key in a.data.metrics for a in arms.values()), key
    prime = arms["prime · seed 0"].data.metrics
    assert "implicit_prm/loss" in prime and "implicit_prm/step_accuracy" in prime
    assert "implicit_prm/loss" not in arms["rloo · seed 0"].data.metrics
    assert {"headline/sample_efficiency", "headline/final_gain", "eval/implicit_prm/step_accuracy"} <= set(run.data.metrics)
    assert "implicit_prm" in logged(run)
    implicit, _, found = artifacts.load_model("03_prime_implicit", "implicit_prm", kind="implicit_prm", profile="smoke")
    assert found.info.run_id == run.info.run_id and implicit.beta == 0.05
    assert static_views(nb)[0] == 3 and "arm_summary.json" in logged(run)
    assert "'PRIME learns faster than outcome-only RLOO'" in printed(nb)


def test_04_smc_decoding(module_store, tmp_path):
    # the default scorers, and the implicit PRM of 03 (one run: a notebook run costs seconds before its first cell)
    run, nb = smoke("04", tmp_path, "-p", "scorers", "prm,oracle,likelihood,implicit")
    m = run.data.metrics
    assert run.data.tags["prmlab.prm_run"] == tracking.latest_run("01_prm_training", "smoke").info.run_id
    assert "acc/smc/implicit" in m and "acc/best_of_n/implicit" in m
    assert run.data.tags["prmlab.scorer.implicit"] == tracking.latest_run("03_prime_implicit", "smoke").info.run_id
    for scorer in ("prm", "oracle"):
        for method in ("smc", "beam_search", "dvts", "best_of_n", "weighted_majority"):
            key = f"{method}/{scorer}"
            assert f"acc/{key}" in m and f"tokens/{key}" in m and f"wall_time/{key}" in m, key
    assert "acc/majority" in m
    assert "sensitivity/scheme/residual" in m and "sensitivity/tau" in m
    assert len(tracking.client().get_metric_history(run.info.run_id, "acc/smc/prm")) == 3  # N = 1, 2, 4
    figs = logged(run, "figures")
    assert {"figures/accuracy_vs_n.html", "figures/accuracy_vs_tokens.html", "figures/genealogy.html",
            "figures/best_of_n_picks.html"} <= figs
    assert "comparison_rows.json" in logged(run)
    # the baselines: the likelihood scorer, greedy decoding, sampling at lower temperatures
    for key in ("acc/smc/likelihood", "acc/best_of_n/likelihood", "acc/greedy", "tokens/greedy", "acc/majority_t0.5",
                "acc/majority_t0.7", "acc/best_of_n_t0.5/prm", "tokens/best_of_n_t0.7/prm", "headline/acc/greedy",
                "headline/prm/best_search_minus_greedy", "headline/likelihood/worth_its_tokens",
                "headline/oracle/best_search_minus_best_sampling_at_tokens"):
        assert key in m, key
    assert "acc/beam_search/likelihood" not in m and "acc/best_of_n_t0.5/oracle" not in m
    assert static_views(nb)[0] == 6
    out = printed(nb)
    assert out.count("the headline (SMC needs fewer solutions than best-of-N and beam search)") == 3  # prm, oracle, implicit
    assert out.count("the headline (SMC needs fewer solutions than best-of-N)") == 1  # likelihood: no beam search
    assert out.count("worth its tokens") == 4


PAPER_SMALL = {
    "00": ["-p", "n_eval", "3", "-p", "max_k", "2", "-p", "max_new_tokens", "16", "-p", "sample_batch", "8",
           "-p", "explorer_samples", "2"],
    "01": ["-p", "n_label_problems", "2", "-p", "n_per_problem", "2", "-p", "mc_n", "2", "-p", "prm_steps", "2",
           "-p", "prm_batch", "2", "-p", "n_eval", "2", "-p", "bon_max_n", "2", "-p", "real_text", "false",
           "-p", "max_new_tokens", "16", "-p", "sample_batch", "8", "-p", "explorer_samples", "1"],
    "02": ["-p", "arms", "verifiable,prm-min", "-p", "rl_steps", "1", "-p", "prompts_per_step", "2", "-p", "k", "2",
           "-p", "max_new_tokens", "16", "-p", "minibatch_size", "4", "-p", "lora_r", "4", "-p", "n_eval", "2",
           "-p", "eval_every", "1", "-p", "eval_samples", "1", "-p", "explorer_samples", "1"],
    "03": ["-p", "rl_steps", "1", "-p", "prompts_per_step", "2", "-p", "k", "2", "-p", "max_new_tokens", "16",
           "-p", "n_eval", "2", "-p", "eval_every", "1", "-p", "eval_samples", "1", "-p", "quality_problems", "2",
           "-p", "quality_samples", "2", "-p", "filter_low", "0", "-p", "filter_high", "1"],
    "04": ["-p", "n_problems", "2", "-p", "max_n", "2", "-p", "beam_m", "2", "-p", "repetitions", "1",
           "-p", "sensitivity_n", "2", "-p", "tau_grid", "1", "-p", "genealogy_particles", "2",
           "-p", "max_new_tokens", "16"],
}


def write_real_files(tmp_path: Path) -> tuple[Path, Path]:
    """A Math-Shepherd file of step labels and a ProcessBench file (subsets gsm8k and math) of word problems."""
    from prmlab.prm.formats import ProcessBenchRecord, StepwiseRecord, write_math_shepherd_jsonl, write_processbench_jsonl

    steps = ["Step 1: She has 3 + 4 = 7 apples.", "Step 2: She eats 2, so 7 - 2 = 5 are left.", "Step 3: The answer is 5."]
    wrong = [steps[0], "Step 2: She eats 2, so 7 - 2 = 4 are left.", "Step 3: The answer is 4."]
    question = "Ann has 3 apples and buys 4. She eats 2. How many are left?"
    write_math_shepherd_jsonl([StepwiseRecord(question, steps, [1.0, 1.0, 1.0]),
                               StepwiseRecord(question, wrong, [1.0, 0.0, 0.0])], tmp_path / "shepherd.jsonl")
    write_processbench_jsonl([ProcessBenchRecord(f"{subset}-{i}", question, s, label) for subset in ("gsm8k", "math")
                              for i, (s, label) in enumerate([(steps, -1), (wrong, 1), (steps, -1), (wrong, 1)])],
                             tmp_path / "processbench.jsonl")
    return tmp_path / "shepherd.jsonl", tmp_path / "processbench.jsonl"


def test_paper_profile_path_runs_on_a_local_model(tmp_path, monkeypatch, char_tokenizer):
    """The paper profile's code path (a pretrained model by path, GSM8K, graded answers, LoRA PRM on
    Monte Carlo labels, no step oracle) end to end on CPU, every notebook, with tiny local models standing
    in for the hub's policy and for one published PRM per convention, files of step labels and of
    ProcessBench written here, and sizes cut to seconds. Generation stays on prmlab's sampler here (the
    profile's vLLM engine would start five times): tests/test_vllm_backend.py and the real-cpu runs with
    ``backend = vllm`` test that part."""
    from prmlab.models import PolicyConfig, build_policy, save_pretrained
    from stand_ins import save_stand_in

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}")
    (tmp_path / "store").mkdir()
    model_dir = tmp_path / "local-model"
    save_pretrained(build_policy(char_tokenizer, PolicyConfig(hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=2,
                                                              intermediate_size=64)), char_tokenizer, model_dir)
    prms = {c: save_stand_in(c, tmp_path / c) for c in ("math-shepherd", "qwen-prm", "token-classification")}
    labels, bench = write_real_files(tmp_path)
    extra = {"00": ["-p", "policy", str(model_dir)],
             "01": ["-p", "label_file", str(labels), "-p", "scorers", f"math-shepherd:{prms['math-shepherd']}",
                    "-p", "processbench_file", str(bench)],
             "02": ["-p", "prm_name", f"token-classification:{prms['token-classification']}"],
             "04": ["-p", "scorers", f"prm,qwen-prm:{prms['qwen-prm']},mine=prmlab:{tmp_path / 'prm_file'}"]}
    runs = {}
    for number in ("00", "01", "02", "03", "04"):
        if number == "04":  # 01's PRM trained on the file, saved as a local prmlab PRM
            artifacts.load_model("01_prm_training", "prm_file", kind="prm", profile="paper", device="cpu")[0].save(
                tmp_path / "prm_file")
        res = subprocess.run([sys.executable, "-m", "prmlab.cli", "run", number, "--profile", "paper", "-p", "backend",
                              "prmlab", *extra.get(number, []), *PAPER_SMALL[number]],
                             capture_output=True, text=True, cwd=tmp_path, env=os.environ.copy(), timeout=600)
        assert res.returncode == 0, res.stdout + res.stderr
        run_id = next(ln.split(": ")[1] for ln in res.stdout.splitlines() if ln.startswith("run_id: "))
        runs[number] = tracking.client().get_run(run_id)
    assert runs["00"].data.params["dataset"] == "gsm8k" and "eval/pass_at_1" in runs["00"].data.metrics
    assert "eval/first_error/none" not in runs["00"].data.metrics  # no oracle on real data
    m, tags = runs["01"].data.metrics, runs["01"].data.tags
    assert runs["01"].data.params["lora"] == "true" and "headline/prm_best_of_n" in m
    assert "train/PRM-file/loss" in m and "prm_file" in logged(runs["01"])  # the PRM of the label file
    assert "bon/math-shepherd/min" in m and tags["prmlab.scorer.math-shepherd"] == f"math-shepherd:{prms['math-shepherd']}"
    for scorer in ("PRM-file", "PRM-mc-hard", "math-shepherd"):  # ProcessBench per subset, by its authors' rules
        for subset in ("gsm8k", "math"):
            assert f"processbench/{scorer}/{subset}/f1" in m and m[f"processbench/{scorer}/{subset}/n_error"] == 2
    assert tags["prmlab.processbench.rule.math-shepherd"].startswith("argmax")
    assert "chosen by F1 on the gsm8k subset" in tags["prmlab.processbench.rule.PRM-file"]
    assert "processbench.json" in logged(runs["01"])
    arms = nested_runs(runs["02"])  # PURE's convention rewards the PRM arm
    assert "reward/prm_mean" in arms["prm-min · seed 0"].data.metrics and "eval/accuracy" in arms["verifiable · seed 0"].data.metrics
    assert runs["02"].data.tags["prmlab.prm_run"] == f"token-classification:{prms['token-classification']}"
    assert "eval/accuracy" in nested_runs(runs["03"])["prime · seed 0"].data.metrics
    assert {"acc/smc/prm", "acc/smc/qwen-prm", "acc/beam_search/qwen-prm", "acc/best_of_n/mine"} <= set(runs["04"].data.metrics)
    assert runs["04"].data.tags["prmlab.scorer.mine"] == f"prmlab:{tmp_path / 'prm_file'}"
