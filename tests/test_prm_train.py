"""PRM training: it learns, LoRA trains only adapters + head, the ORM target reads only the last step,
save/load round trips keep the scores, notebook 01's set of models is trained and named as logged, and
2 accelerate processes match 1 process."""

import copy
import math
import random
import textwrap

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import run_in_one_and_two_processes
from prmlab.prm.formats import StepwiseRecord
from prmlab.prm.model import PRMConfig, ProcessRewardModel
from prmlab.prm.train import (
    PRMTrainConfig,
    artifact_name,
    evaluate_prm,
    global_batches,
    label_sources,
    model_metrics,
    train_models,
    train_prm,
)
from prmlab.tasks.arith import ArithConfig, make_splits, judge, solution_with_mistake, split_steps



def mistake_records(problems, seed, rate=0.5):
    """Reference solutions and solutions with one injected extra '*' step (problems use only + and -),
    labelled by the oracle. A randomly initialised tiny backbone cannot learn arithmetic within a test's
    budget, but it can learn this; what is tested is that labels, step ends and the loss line up."""
    rng = random.Random(seed)
    out = []
    for p in problems:
        text = p.reference_solution()
        if rng.random() < rate:
            while "*" not in text:
                text, _ = solution_with_mistake(p, rng, "extra")
        out.append(StepwiseRecord(p.prompt, split_steps(text), judge(p, text).step_labels))
    return out


@pytest.fixture(scope="module")
def data():
    train, held_out = make_splits(ArithConfig(ops="+-", max_ops=4), 160, 40, seed=0)
    return mistake_records(train, 0), mistake_records(held_out, 1)


def test_config_names_valid_targets():
    with pytest.raises(ValueError, match="valid choices: prm, orm"):
        PRMTrainConfig(target="outcome")


def test_global_batches_are_seeded_epochs():
    b = global_batches(10, 4, 5, seed=3)
    assert b == global_batches(10, 4, 5, seed=3) != global_batches(10, 4, 5, seed=4)
    flat = [i for batch in b for i in batch]
    assert sorted(flat[:10]) == list(range(10)) and len(b) == 5 and all(len(x) == 4 for x in b)


def test_training_reduces_loss_and_separates_good_from_bad_steps(tiny_policy, char_tokenizer, data):
    train, held_out = data
    prm = ProcessRewardModel.from_policy(tiny_policy, char_tokenizer)
    before = evaluate_prm(prm, held_out)
    assert before["eval/step_auroc"] == 0.5  # the zero head scores every step 0.5
    logged = []
    cfg = PRMTrainConfig(steps=70, batch_size=16, lr=3e-3, warmup_steps=5, log_every=20)
    history = train_prm(prm, train, cfg, log=lambda m, s: logged.append((s, m)), progress=False)
    assert [s for s, _ in logged] == [0, 20, 40, 60, 69]
    assert {"train/loss", "train/lr", "train/grad_norm", "train/step_accuracy"} <= set(logged[0][1])
    assert history[0]["train/loss"] == pytest.approx(math.log(2), abs=1e-6)
    assert np.mean([h["train/loss"] for h in history[-10:]]) < 0.5
    after = evaluate_prm(prm, held_out)
    assert after["eval/step_auroc"] > 0.8, after
    assert after["eval/step_accuracy"] > before["eval/step_accuracy"]
    assert not prm.training


def test_loss_is_the_mean_bce_over_all_steps_of_the_batch(tiny_policy, char_tokenizer, data):
    records = data[0][:6]
    prm = ProcessRewardModel.from_policy(tiny_policy, char_tokenizer)
    torch.nn.init.normal_(prm.head.weight, std=0.5)
    with torch.no_grad():
        logits = prm.step_logits([r.prompt for r in records], [r.completions for r in records])
    z = torch.cat(logits)
    y = torch.tensor([y for r in records for y in r.labels])
    expected = F.binary_cross_entropy_with_logits(z, y).item()  # mean over steps, not solutions
    hist = train_prm(prm, records, PRMTrainConfig(steps=1, batch_size=6), progress=False)
    assert hist[0]["train/loss"] == pytest.approx(expected, rel=1e-5)
    assert hist[0]["train/step_accuracy"] == pytest.approx(((z >= 0) == (y >= 0.5)).float().mean().item())


def test_lora_trains_only_adapters_and_head(tiny_policy, char_tokenizer, data):
    prm = ProcessRewardModel.from_policy(tiny_policy, char_tokenizer, PRMConfig(lora=True, lora_r=4))
    trainable = {n for n, p in prm.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n or n.startswith("head.") for n in trainable)
    before = {n: p.detach().cpu().clone() for n, p in prm.named_parameters()}
    train_prm(prm, data[0], PRMTrainConfig(steps=4, batch_size=8, lr=1e-2, warmup_steps=0), progress=False)
    for n, p in prm.named_parameters():
        changed = not torch.equal(before[n], p.detach().cpu())
        if "lora_B" in n or n.startswith("head."):
            assert changed, n
        elif "lora_" not in n:
            assert not changed, n  # the backbone stays frozen


def test_orm_target_uses_only_the_last_step(tiny_policy, char_tokenizer, data):
    records = data[0][:12]
    scrambled = [StepwiseRecord(r.prompt, r.completions, [1.0 - y for y in r.labels[:-1]] + r.labels[-1:]) for r in records]
    base = ProcessRewardModel.from_policy(tiny_policy, char_tokenizer)
    runs = {}
    for name, recs, target in [("orm", records, "orm"), ("orm-scrambled", scrambled, "orm"), ("prm-scrambled", scrambled, "prm")]:
        prm = copy.deepcopy(base)
        hist = train_prm(prm, recs, PRMTrainConfig(steps=3, batch_size=4, lr=1e-2, warmup_steps=0, target=target), progress=False)
        runs[name] = ([h["train/loss"] for h in hist], prm.head.weight.detach().clone())
    assert runs["orm"][0] == runs["orm-scrambled"][0]
    assert torch.equal(runs["orm"][1], runs["orm-scrambled"][1])
    assert not torch.equal(runs["orm"][1], runs["prm-scrambled"][1])


@pytest.mark.parametrize("lora", [False, True])
def test_save_load_round_trip_keeps_scores(tiny_policy, char_tokenizer, data, tmp_path, lora):
    prm = ProcessRewardModel.from_policy(tiny_policy, char_tokenizer, PRMConfig(lora=lora, lora_r=4))
    train_prm(prm, data[0], PRMTrainConfig(steps=3, batch_size=8, lr=1e-2, warmup_steps=0), progress=False)
    recs = data[1][:8]
    args = ([r.prompt for r in recs], [r.completions for r in recs])
    loaded = ProcessRewardModel.load(prm.save(tmp_path / "prm"), device=str(prm.device))
    for a, b in zip(prm.score(*args), loaded.score(*args)):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_label_sources_add_the_main_source_and_drop_oracle_labels_without_an_oracle():
    assert label_sources("oracle, mc-hard,,mc-soft", "mc-hard", has_oracle=True) == ["oracle", "mc-hard", "mc-soft"]
    assert label_sources("oracle", "mc-soft", has_oracle=True) == ["oracle", "mc-soft"]
    assert label_sources("oracle,mc-hard", "mc-hard", has_oracle=False) == ["mc-hard"]


def test_artifact_names_and_model_metrics():
    assert artifact_name("PRM-mc-hard", main="PRM-mc-hard") == "prm"
    assert artifact_name("PRM-mc-soft", main="PRM-mc-hard") == "prm_mc_soft"
    assert artifact_name("PRM-oracle", main="PRM-mc-hard") == "prm_oracle"
    assert artifact_name("ORM", main="PRM-mc-hard") == "orm"
    assert model_metrics({"train/loss": 1.0, "train/lr": 0.1, "perf/s": 2.0}, "PRM-oracle") == {
        "train/PRM-oracle/loss": 1.0, "train/PRM-oracle/lr": 0.1, "perf/s": 2.0}


class RecordsBySource:
    """Stands in for a LabelSet: ``records(source)`` only (what ``train_models`` reads)."""

    def __init__(self, by_source):
        self.by_source = by_source

    def records(self, source):
        return self.by_source[source]


def test_train_models_trains_one_prm_per_source_and_an_orm_exactly_as_train_prm_does(tiny_policy, char_tokenizer, data):
    records = data[0][:16]
    flipped = [StepwiseRecord(r.prompt, r.completions, [1.0 - y for y in r.labels]) for r in records]
    label_set = RecordsBySource({"oracle": records, "mc-hard": flipped, "outcome": records})
    cfg = PRMTrainConfig(steps=3, batch_size=8, lr=1e-2, warmup_steps=0, log_every=1)
    logged = []
    models, histories = train_models(tiny_policy, char_tokenizer, label_set, ["oracle", "mc-hard"], PRMConfig(), cfg,
                                     log=lambda m, step: logged.append((step, m)), progress=False)
    assert list(models) == list(histories) == ["PRM-oracle", "PRM-mc-hard", "ORM"]
    assert models["PRM-mc-hard"].config.extra == {"labels": "mc-hard"} and models["ORM"].config.extra == {"labels": "outcome"}
    assert {"train/PRM-oracle/loss", "train/ORM/step_accuracy"} <= {k for _, m in logged for k in m}
    assert [s for s, m in logged if "train/ORM/loss" in m] == [0, 1, 2]
    for name, source, target in [("PRM-mc-hard", "mc-hard", "prm"), ("ORM", "outcome", "orm")]:
        ref = ProcessRewardModel.from_policy(tiny_policy, char_tokenizer)
        hist = train_prm(ref, label_set.records(source), PRMTrainConfig(**{**cfg.__dict__, "target": target}), progress=False)
        assert [h["train/loss"] for h in hist] == [h["train/loss"] for h in histories[name]]
        assert torch.equal(ref.head.weight, models[name].head.weight)
    assert not any(m.training for m in models.values())


# ----------------------------------------------------------------------------------------------
# One process vs two accelerate processes (CPU, gloo).

SCRIPT = textwrap.dedent(
    """
    import json, random, sys
    import torch
    from accelerate import PartialState
    from prmlab.models import PolicyConfig, build_char_tokenizer, build_policy
    from prmlab.prm.formats import StepwiseRecord
    from prmlab.prm.model import ProcessRewardModel
    from prmlab.prm.train import PRMTrainConfig, train_prm
    from prmlab.tasks.arith import ArithTask, judge, solution_with_mistake, split_steps

    torch.set_num_threads(1)
    tok = build_char_tokenizer()
    policy = build_policy(tok, PolicyConfig(hidden_size=32, num_layers=2, num_heads=4, num_kv_heads=2,
                                            intermediate_size=64), seed=0)
    prm = ProcessRewardModel.from_policy(policy, tok)
    rng = random.Random(0)
    records = []
    for p in ArithTask(n_train=0, n_eval=12).eval:  # 2 to 5 steps each: processes get unequal step counts
        text = p.reference_solution() if rng.random() < 0.5 else solution_with_mistake(p, rng, "arithmetic")[0]
        soft = [0.1 + 0.8 * y for y in judge(p, text).step_labels]  # soft labels exercise the soft BCE
        records.append(StepwiseRecord(p.prompt, split_steps(text), soft))
    logged = []
    cfg = PRMTrainConfig(steps=3, batch_size=8, lr=1e-2, warmup_steps=0, log_every=1)
    history = train_prm(prm, records, cfg, log=lambda m, s: logged.append(s), progress=False)
    state = PartialState()
    out = {
        "processes": state.num_processes,
        "losses": [h["train/loss"] for h in history],
        "grad_norms": [h["train/grad_norm"] for h in history],
        "head": prm.head.weight.flatten().tolist() + prm.head.bias.tolist(),
        "backbone_checksum": float(sum(p.double().abs().sum() for p in prm.backbone.parameters())),
        "logged": logged,
    }
    with open(f"{sys.argv[1]}.{state.process_index}.json", "w") as f:
        json.dump(out, f)
    """
)


def test_two_accelerate_processes_match_one(tmp_path):
    one, rank0, rank1 = run_in_one_and_two_processes(tmp_path, SCRIPT)
    assert one["processes"] == 1 and rank0["processes"] == rank1["processes"] == 2
    np.testing.assert_allclose(rank0["losses"], one["losses"], rtol=0, atol=1e-5)
    np.testing.assert_allclose(rank0["grad_norms"], one["grad_norms"], rtol=1e-4)
    np.testing.assert_allclose(rank0["head"], one["head"], rtol=0, atol=1e-5)
    assert rank0["backbone_checksum"] == pytest.approx(one["backbone_checksum"], rel=1e-6)
    assert rank1["losses"] == rank0["losses"] and rank1["head"] == rank0["head"]  # processes stay in sync
    assert one["logged"] == rank0["logged"] == [0, 1, 2] and rank1["logged"] == []  # main process logs


def test_cached_scorer_select_in_place_equals_select():
    from prmlab.models import PolicyConfig, build_char_tokenizer, build_policy
    from prmlab.prm.model import CachedPRMScorer, ProcessRewardModel

    tok = build_char_tokenizer()
    prm = ProcessRewardModel.from_policy(build_policy(tok, PolicyConfig(hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=2,
                                                                          intermediate_size=64)), tok)
    torch.nn.init.normal_(prm.head.weight, 0, 0.5)
    scorer = CachedPRMScorer(prm)
    state = scorer.start(["Q: 1 +2\n", "Q: 4 *2\n", "Q: 9 -3\n"])
    scorer.append(state, ["1+2=3", "4*2=8", "9-3=6"])
    ref = scorer.select(state, [1, 1, 2])
    scorer.select_(state, [1, 1, 2])
    assert np.allclose(scorer.append(state, ["A: 8", "8*1=8", "A: 6"]), scorer.append(ref, ["A: 8", "8*1=8", "A: 6"]))


def test_one_forward_per_solution_equals_scoring_each_prefix(tiny_policy, char_tokenizer, data):
    """The reward of step k read from one pass over the whole solution equals the reward read at the end
    of a separate pass over just the prompt and steps 1..k (the PRM is causal); batching with padding
    and the batched tokenizer call change nothing."""
    prm = ProcessRewardModel.from_policy(tiny_policy, char_tokenizer).eval()
    torch.manual_seed(0)
    torch.nn.init.normal_(prm.head.weight, std=0.5)
    records = data[1][:6]
    prompts, steps = [r.prompt for r in records], [r.completions for r in records]
    for (ids, ends, prompt_len), p, s in zip(prm.encode_many(prompts, steps), prompts, steps):  # text by text
        ref, ref_ends = list(char_tokenizer(p).input_ids), []
        assert prompt_len == len(ref)
        for step in s:
            ref += char_tokenizer(step + prm.config.separator, add_special_tokens=False).input_ids
            ref_ends.append(len(ref) - 1)
        assert (ids, ends) == (ref, ref_ends)
    whole = prm.score(prompts, steps, batch_size=4)
    for p, s, got in zip(prompts, steps, whole):
        ref = []
        for k in range(1, len(s) + 1):
            ids, ends, _ = prm.encode(p, s[:k])
            with torch.no_grad():
                ref.append(torch.sigmoid(prm(torch.tensor([ids]))[0, ends[-1]]).item())
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)
