"""The process reward model: a causal-LM backbone plus a scoring head read at the end of every step.

A solution is encoded as ``prompt, step_1 + SEP, step_2 + SEP, ...``; the head reads the hidden state
at the last token of each step (its separator), so **all steps of a solution are scored in one forward
pass**. The reward of a step is ``sigmoid(head(h))``: the model's probability that the solution is still
correct after that step.

``ProcessRewardModel`` is a batch ``StepScorer`` (`prmlab.prm.scorer`); ``CachedPRMScorer`` makes it an
``IncrementalScorer`` on top of the KV-cached decoder, so scoring a new step costs only that step's tokens.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..kv_decoder import DecoderState, make_decoder
from ..models import add_lora, unwrap
from .scorer import IncrementalScorer, StepScorer

STEP_SEPARATOR = "\n"


@dataclass
class PRMConfig:
    """How the PRM is built from its backbone."""

    lora: bool = False  # train LoRA adapters (peft) instead of the full backbone
    lora_r: int = 8  # LoRA rank
    lora_alpha: int = 16  # LoRA scaling
    separator: str = STEP_SEPARATOR  # appended to each step; the head reads its last token
    extra: dict = field(default_factory=dict)  # free-form provenance (label source, policy run, ...)


class ProcessRewardModel(nn.Module, StepScorer):
    """Backbone (any HF causal LM) + linear head on the hidden state at the end of each step."""

    def __init__(self, backbone, tokenizer, config: PRMConfig | None = None):
        super().__init__()
        self.config = config or PRMConfig()
        self.tokenizer = tokenizer
        self.backbone = backbone
        hidden = unwrap(backbone).config.hidden_size
        self.head = nn.Linear(hidden, 1)
        nn.init.zeros_(self.head.weight)  # start at reward 0.5 everywhere: no step is favoured
        nn.init.zeros_(self.head.bias)

    @classmethod
    def from_policy(cls, policy, tokenizer, config: PRMConfig | None = None) -> "ProcessRewardModel":
        """A PRM whose backbone starts as a copy of ``policy`` (the policy itself is left untouched)."""
        config = config or PRMConfig()
        backbone = copy.deepcopy(unwrap(policy))
        if config.lora:
            backbone = add_lora(backbone, r=config.lora_r, alpha=config.lora_alpha)
        return cls(backbone, tokenizer, config)

    @property
    def device(self):
        return self.head.weight.device

    # -- encoding -----------------------------------------------------------------------------

    def encode(self, prompt: str, steps: list[str]) -> tuple[list[int], list[int]]:
        """Token ids of prompt + steps and the position of the last token of each step."""
        return self.encode_many([prompt], [steps])[0]

    def encode_many(self, prompts: list[str], steps: list[list[str]]) -> list[tuple[list[int], list[int]]]:
        """``encode`` of every solution, with the tokenizer called twice in all (one Rust batch for the
        prompts, one for every step): per-step calls cost more than the forward pass of a tiny PRM."""
        prompt_ids = self.tokenizer(list(prompts)).input_ids if prompts else []
        flat = [step + self.config.separator for row in steps for step in row]
        step_ids = iter(self.tokenizer(flat, add_special_tokens=False).input_ids if flat else [])
        out = []
        for p_ids, row in zip(prompt_ids, steps):
            ids, ends = list(p_ids), []
            for _ in row:
                ids += next(step_ids)
                ends.append(len(ids) - 1)
            out.append((ids, ends))
        return out

    def count_tokens(self, prompt: str, steps: list[str]) -> int:
        """Tokens one forward pass over ``prompt`` and ``steps`` reads."""
        return len(self.encode(prompt, steps)[0])

    def collate(self, encoded: list[tuple[list[int], list[int]]]):
        """Right-padded ids [b, T] (no mask needed: causal attention never looks right)."""
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        width = max(len(ids) for ids, _ in encoded)
        batch = torch.full((len(encoded), width), pad, dtype=torch.long)
        for i, (ids, _) in enumerate(encoded):
            batch[i, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        return batch.to(self.device), [ends for _, ends in encoded]

    # -- scoring ------------------------------------------------------------------------------

    def hidden_states(self, input_ids: torch.Tensor) -> torch.Tensor:
        # The transformer body without its LM head (LoRA layers, if any, are injected in place).
        return unwrap(self.backbone).base_model(input_ids=input_ids).last_hidden_state

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Head logits at every position [b, T]; rewards are sigmoid of those at step ends."""
        return self.head(self.hidden_states(input_ids)).squeeze(-1).float()

    def step_logits(self, prompts: list[str], steps: list[list[str]]) -> list[torch.Tensor]:
        ids, ends = self.collate(self.encode_many(prompts, steps))
        logits = self(ids)
        return [logits[i, e] for i, e in enumerate(ends)]

    @torch.no_grad()
    def score(self, prompts: list[str], steps: list[list[str]], batch_size: int = 64) -> list[np.ndarray]:
        """Reward of every step of every solution, one forward pass per solution (batched)."""
        was_training = self.training
        self.eval()
        # Similar lengths together: less padding.
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]) + sum(len(s) for s in steps[i]))
        results: dict[int, np.ndarray] = {}
        for a in range(0, len(order), batch_size):
            idx = order[a : a + batch_size]
            logits = self.step_logits([prompts[i] for i in idx], [steps[i] for i in idx])
            for i, lg in zip(idx, logits):
                results[i] = torch.sigmoid(lg).cpu().numpy().astype(np.float64)
        out = [results[i] for i in range(len(prompts))]
        self.train(was_training)
        return out

    # -- saving -------------------------------------------------------------------------------

    def merged(self) -> "ProcessRewardModel":
        """The same PRM with LoRA adapters merged into plain weights (faster inference, simpler save)."""
        if not hasattr(self.backbone, "merge_and_unload"):
            return self
        out = ProcessRewardModel(copy.deepcopy(self.backbone).merge_and_unload(), self.tokenizer,
                                 PRMConfig(**{**self.config.__dict__, "lora": False}))
        out.head.load_state_dict(self.head.state_dict())
        return out

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        m = self.merged()
        unwrap(m.backbone).save_pretrained(path / "backbone")
        self.tokenizer.save_pretrained(path / "backbone")
        torch.save(m.head.state_dict(), path / "head.pt")
        (path / "prm.json").write_text(json.dumps({"config": {**self.config.__dict__, "lora": False}}, indent=2, default=str))
        return path

    @classmethod
    def load(cls, path: str | Path, device: str | None = None) -> "ProcessRewardModel":
        from ..models import load_causal_lm

        path = Path(path)
        backbone, tokenizer = load_causal_lm(path / "backbone", device=device)
        cfg = json.loads((path / "prm.json").read_text())["config"]
        prm = cls(backbone, tokenizer, PRMConfig(**cfg))
        prm.head.load_state_dict(torch.load(path / "head.pt", map_location="cpu"))
        return prm.to(backbone.device).eval()


# ----------------------------------------------------------------------------------------------
# Incremental scoring.


@dataclass
class CachedState:
    """Rows of partial solutions held in the backbone's KV cache."""

    decoder_state: DecoderState
    tokens_scored: int = 0  # tokens run through the backbone so far (a budget measure)

    @property
    def batch_size(self) -> int:
        return self.decoder_state.batch_size


class CachedPRMScorer(IncrementalScorer):
    """The PRM as an ``IncrementalScorer``: one more step per row costs that step's tokens (KV cache of
    the backbone).

    Works for every ``ProcessRewardModel``; Llama-family backbones get the cached decoder, others fall
    back to recomputing the prefix (same results, slower).
    """

    select_in_place = True

    def __init__(self, prm: ProcessRewardModel):
        self.prm = prm.merged().eval()
        self.decoder = make_decoder(self.prm.backbone)
        self.device = self.prm.device

    def score(self, prompts: list[str], steps: list[list[str]]) -> list[np.ndarray]:
        return self.prm.score(prompts, steps)

    def count_tokens(self, prompt: str, steps: list[str]) -> int:
        return self.prm.count_tokens(prompt, steps)

    @torch.no_grad()
    def start(self, prompts: list[str]) -> CachedState:
        ids = [list(x) for x in self.prm.tokenizer(list(prompts)).input_ids]
        state = self.decoder.empty(len(ids), slots=max(len(x) for x in ids) + 64)
        self._feed(state, ids)
        return CachedState(state, tokens_scored=sum(len(x) for x in ids))

    @torch.no_grad()
    def append(self, state: CachedState, steps: list[str | None]) -> np.ndarray:
        """Append one step to each row whose entry is not None; returns its reward (NaN elsewhere)."""
        rows = [i for i, s in enumerate(steps) if s is not None]
        out = np.full(len(steps), np.nan)
        if not rows:
            return out
        tok = self.prm.tokenizer
        ids = tok([steps[i] + self.prm.config.separator for i in rows], add_special_tokens=False).input_ids
        index = torch.tensor(rows, dtype=torch.long, device=self.device)
        whole = len(rows) == state.batch_size
        sub = state.decoder_state if whole else state.decoder_state.select(index)
        hidden = self._feed(sub, ids)
        if not whole:
            state.decoder_state.put(index, sub)
        out[rows] = torch.sigmoid(self.prm.head(hidden).squeeze(-1).float()).cpu().numpy()
        state.tokens_scored += sum(len(x) for x in ids)
        return out

    def select_(self, state: CachedState, index) -> None:
        """In place, the same as ``state = select(state, index)``, reusing the cache buffers."""
        index = torch.as_tensor(index, dtype=torch.long)
        state.decoder_state = state.decoder_state.select_(index.to(self.device))

    def select(self, state: CachedState, index) -> CachedState:
        index = torch.as_tensor(index, dtype=torch.long)
        return CachedState(state.decoder_state.select(index.to(self.device)), state.tokens_scored)

    def _feed(self, state: DecoderState, ids: list[list[int]]) -> torch.Tensor:
        """Run variable-length token lists through the rows of ``state``; hidden state at each last token."""
        n = max(len(x) for x in ids)
        pad = self.prm.tokenizer.pad_token_id or 0
        chunk = torch.full((len(ids), n), pad, dtype=torch.long)
        for i, x in enumerate(ids):
            chunk[i, : len(x)] = torch.tensor(x, dtype=torch.long)
        lens = torch.tensor([len(x) for x in ids], dtype=torch.long, device=self.device)
        hidden = self.decoder.forward(state, chunk.to(self.device), lens)
        return hidden[torch.arange(len(ids), device=self.device), lens - 1]
