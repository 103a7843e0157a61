"""Tiny local stand-ins for published PRMs, one per convention of `prmlab.prm.adapters`, saved the way their
hub checkpoints are (``save_pretrained`` of model and tokenizer), so that ``CONVENTION:PATH`` loads them.

Each reads the arithmetic task's text with the character tokenizer plus the tokens its convention needs
(Math-Shepherd's step tag, Qwen's separator and chat template). Randomly initialised: they score, they do
not judge well.
"""

from pathlib import Path

import torch
from transformers import (LlamaConfig, LlamaForTokenClassification, MistralConfig, MistralForCausalLM, Qwen2Config,
                          Qwen2ForTokenClassification)

from prmlab.models import build_char_tokenizer

CHAT_TEMPLATE = ("{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>' + '\n' }}"
                 "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
SIZE = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
            max_position_embeddings=512, initializer_range=0.3)  # wide init: rewards spread over (0, 1)
MODELS = {"math-shepherd": (MistralConfig, MistralForCausalLM, {}),
          "qwen-prm": (Qwen2Config, Qwen2ForTokenClassification, {"num_labels": 2}),
          "token-classification": (LlamaConfig, LlamaForTokenClassification, {"num_labels": 2})}


def stand_in_tokenizer():
    tok = build_char_tokenizer()
    tok.add_tokens(["ки"])
    tok.add_special_tokens({"additional_special_tokens": ["<extra_0>", "<|im_start|>", "<|im_end|>"]})
    tok.chat_template = CHAT_TEMPLATE
    return tok


def save_stand_in(convention: str, path: Path, seed: int = 0) -> Path:
    """A tiny PRM of ``convention`` (math-shepherd, qwen-prm, token-classification) saved at ``path``."""
    config_cls, model_cls, extra = MODELS[convention]
    tok = stand_in_tokenizer()
    torch.manual_seed(seed)
    config = config_cls(vocab_size=len(tok), pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                        eos_token_id=tok.eos_token_id, **SIZE, **extra)
    model_cls(config).save_pretrained(path)
    tok.save_pretrained(path)
    return Path(path)
