import torch

from prmlab import models


def test_char_tokenizer_round_trip(tmp_path, char_tokenizer):
    text = "Q: 17 +5 *3\n17+5=22\nA: 22"
    ids = char_tokenizer(text).input_ids
    assert ids[0] == char_tokenizer.bos_token_id and len(ids) == len(text) + 1
    assert char_tokenizer.decode(ids, skip_special_tokens=True) == text
    char_tokenizer.save_pretrained(tmp_path)
    from transformers import AutoTokenizer

    again = AutoTokenizer.from_pretrained(tmp_path)
    assert again(text).input_ids == ids
    assert again.decode(ids[1:]) == text
    assert again.eos_token == "</s>" and again.pad_token == "<pad>"


def test_build_policy_architectures(char_tokenizer):
    for arch in models.ARCHITECTURES:
        m = models.build_policy(char_tokenizer, models.PolicyConfig(arch=arch, hidden_size=32, num_layers=1, num_heads=2,
                                                                    num_kv_heads=1, intermediate_size=64))
        assert m.config.model_type == arch
        out = m(torch.tensor([[1, 5, 6]])).logits
        assert out.shape == (1, 3, len(char_tokenizer))


def test_same_seed_same_weights(char_tokenizer):
    cfg = models.PolicyConfig(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64)
    a, b = models.build_policy(char_tokenizer, cfg, seed=3), models.build_policy(char_tokenizer, cfg, seed=3)
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))


def test_save_and_load_any_causal_lm(tmp_path, tiny_policy, char_tokenizer):
    models.save_pretrained(tiny_policy, char_tokenizer, tmp_path / "p", extra={"note": 1, "cfg": models.PolicyConfig()})
    m, tok = models.load_causal_lm(tmp_path / "p", device="cpu")
    x = torch.tensor([char_tokenizer("Q: 1 +2\n").input_ids])
    assert torch.allclose(m(x).logits, tiny_policy(x).logits, atol=1e-6)
    assert models.read_extra(tmp_path / "p")["cfg"]["hidden_size"] == 128


def test_lora_trains_only_adapters(tiny_policy):
    import copy

    m = models.add_lora(copy.deepcopy(tiny_policy), r=4)
    trainable = [n for n, p in m.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert models.unwrap(m).config.model_type == "llama"


def test_unknown_arch_names_choices(char_tokenizer):
    import pytest

    with pytest.raises(ValueError, match="llama"):
        models.build_policy(char_tokenizer, models.PolicyConfig(arch="gpt9"))


def test_qwen2_policy_keeps_its_character_tokenizer(tmp_path, char_tokenizer):
    # AutoTokenizer would swap in Qwen2Tokenizer for a qwen2 config and change how text splits.
    m = models.build_policy(char_tokenizer, models.PolicyConfig(arch="qwen2", hidden_size=32, num_layers=1, num_heads=2,
                                                                intermediate_size=64))
    models.save_pretrained(m, char_tokenizer, tmp_path / "q")
    _, tok = models.load_causal_lm(tmp_path / "q", device="cpu")
    assert tok("Q: 1 +2\n").input_ids == char_tokenizer("Q: 1 +2\n").input_ids
