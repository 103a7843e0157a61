"""The process reward model: a causal-LM backbone plus a scoring head read at the end of every step.

A solution is encoded as ``prompt, step_1 + SEP, step_2 + SEP, ...``; the head reads the hidden state
at the last token of each step (its separator), so **all steps of a solution are scored in one forward
pass**. The reward of a step is ``sigmoid(head(h))``: the model's probability that the solution is still
correct after that step.

Readouts (``PRMConfig.readout``): ``"head"`` is that linear head alone (the published convention).
``"likelihood"`` adds the backbone's own next-token log-likelihoods: the step's logit is
``head(h) + scale * m``, with ``m`` the lowest log-probability the backbone gives any token of the
solution so far (every token of every step up to this one, separators aside) and ``scale`` learnt. A
linear head read at the step's end cannot easily see that one written digit is not the one the model
itself expected a few positions earlier; the language model head says exactly that, token by token,
and a running minimum makes it a statement about the prefix, as process labels are.

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
import torch.nn.functional as F
from torch import nn

from ..batching import length_chunks, pad_id, right_pad
from ..choices import check_choice
from ..kv_decoder import DecoderState, make_decoder
from ..models import add_lora, unwrap
from .scorer import IncrementalScorer, StepScorer

STEP_SEPARATOR = "\n"
READOUTS = ("head", "likelihood")
# Likelihood readout at initialisation: a prefix whose least likely token has probability e^-3 (5%)
# gets reward 0.5; one whose tokens are all near-certain gets sigmoid(3) = 0.95.
LIKELIHOOD_BIAS = 3.0


@dataclass
class PRMConfig:
    """How the PRM is built from its backbone."""

    lora: bool = False  # train LoRA adapters (peft) instead of the full backbone
    lora_r: int = 8  # LoRA rank
    lora_alpha: int = 16  # LoRA scaling
    separator: str = STEP_SEPARATOR  # appended to each step; the head reads its last token
    readout: str = "head"  # "head": linear head only; "likelihood": plus the running minimum token log-prob
    freeze_backbone: bool = False  # train only the readout (head, likelihood scale); the backbone stays as given
    extra: dict = field(default_factory=dict)  # free-form provenance (label source, policy run, ...)

    def __post_init__(self):
        check_choice(self.readout, READOUTS, "readout")
        if self.lora and self.freeze_backbone:
            raise ValueError("lora and freeze_backbone exclude each other: LoRA trains the backbone's adapters")


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
        if self.likelihood:
            self.likelihood_scale = nn.Parameter(torch.tensor(1.0))
            nn.init.constant_(self.head.bias, LIKELIHOOD_BIAS)  # start as the backbone's likelihood alone
        if self.config.freeze_backbone:
            backbone.requires_grad_(False)

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

    @property
    def likelihood(self) -> bool:
        return self.config.readout == "likelihood"

    # -- encoding -----------------------------------------------------------------------------

    def encode(self, prompt: str, steps: list[str]) -> tuple[list[int], list[int], int]:
        """Token ids of prompt + steps, the position of the last token of each step, and the prompt's
        length in tokens."""
        return self.encode_many([prompt], [steps])[0]

    def encode_many(self, prompts: list[str], steps: list[list[str]]) -> list[tuple[list[int], list[int], int]]:
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
            out.append((ids, ends, len(p_ids)))
        return out

    def count_tokens(self, prompt: str, steps: list[str]) -> int:
        """Tokens one forward pass over ``prompt`` and ``steps`` reads."""
        return len(self.encode(prompt, steps)[0])

    def collate(self, encoded: list[tuple[list[int], list[int], int]]):
        """Right-padded ids [b, T] (no attention mask needed: causal attention never looks right), the
        step ends of each row, and (likelihood readout, else None) the mask [b, T] of the tokens whose
        log-probability counts: every token of every step but its last, the separator the head reads."""
        batch, _ = right_pad([ids for ids, _, _ in encoded], pad_id(self.tokenizer))
        counted = torch.zeros(batch.shape, dtype=torch.bool) if self.likelihood else None
        for i, (_, ends, start) in enumerate(encoded):
            for end in ends if self.likelihood else ():
                counted[i, start:end] = True
                start = end + 1
        counted = counted.to(self.device) if counted is not None else None
        return batch.to(self.device), [ends for _, ends, _ in encoded], counted

    # -- scoring ------------------------------------------------------------------------------

    def hidden_states(self, input_ids: torch.Tensor) -> torch.Tensor:
        # The transformer body without its LM head (LoRA layers, if any, are injected in place).
        return unwrap(self.backbone).base_model(input_ids=input_ids).last_hidden_state

    def forward(self, input_ids: torch.Tensor, counted: torch.Tensor | None = None) -> torch.Tensor:
        """Reward logits at every position [b, T]; rewards are sigmoid of those at step ends.
        ``counted``: the likelihood readout's token mask (from ``collate``)."""
        hidden = self.hidden_states(input_ids)
        logits = self.head(hidden).squeeze(-1).float()
        if not self.likelihood:
            return logits
        if counted is None:
            raise ValueError("the likelihood readout needs the mask of counted tokens (see collate)")
        token_lp = torch.zeros_like(logits)
        rows, cols = counted.nonzero(as_tuple=True)
        if len(rows):  # the LM head only where a token counts: a real vocabulary makes it costly elsewhere
            lp = self.token_logprobs(hidden[rows, cols - 1], input_ids[rows, cols])  # hidden at t-1 predicts token t
            token_lp = token_lp.index_put((rows, cols), lp)
        return logits + self.likelihood_scale * running_min(token_lp)

    def token_logprobs(self, hidden: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """log p(token | the position whose final hidden state is ``hidden``), under the backbone's LM head."""
        lm_head = unwrap(self.backbone).get_output_embeddings()
        return torch.log_softmax(lm_head(hidden).float(), -1).gather(-1, tokens[..., None])[..., 0]

    def step_logits(self, prompts: list[str], steps: list[list[str]]) -> list[torch.Tensor]:
        ids, ends, counted = self.collate(self.encode_many(prompts, steps))
        logits = self(ids, counted)
        return [logits[i, e] for i, e in enumerate(ends)]

    @torch.no_grad()
    def score(self, prompts: list[str], steps: list[list[str]], batch_size: int = 64) -> list[np.ndarray]:
        """Reward of every step of every solution, one forward pass per solution (batched)."""
        was_training = self.training
        self.eval()
        results: dict[int, np.ndarray] = {}
        chars = [len(p) + sum(len(s) for s in row) for p, row in zip(prompts, steps)]  # a length known before encoding
        for idx in length_chunks(chars, max_rows=batch_size):  # similar lengths together: less padding
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
        out.load_state_dict(self.readout_state(), strict=False)
        return out

    def readout_state(self) -> dict:
        """Every parameter outside the backbone (the head; with the likelihood readout, its scale)."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith("backbone.")}

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        m = self.merged()
        unwrap(m.backbone).save_pretrained(path / "backbone")
        self.tokenizer.save_pretrained(path / "backbone")
        torch.save(m.readout_state(), path / "head.pt")
        (path / "prm.json").write_text(json.dumps({"config": {**self.config.__dict__, "lora": False}}, indent=2, default=str))
        return path

    @classmethod
    def load(cls, path: str | Path, device: str | None = None) -> "ProcessRewardModel":
        from ..models import load_causal_lm

        path = Path(path)
        backbone, tokenizer = load_causal_lm(path / "backbone", device=device)
        cfg = json.loads((path / "prm.json").read_text())["config"]
        prm = cls(backbone, tokenizer, PRMConfig(**cfg))
        state = torch.load(path / "head.pt", map_location="cpu")
        if "weight" in state:  # saved before the likelihood readout: the head's own state
            state = {f"head.{k}": v for k, v in state.items()}
        missing, unexpected = prm.load_state_dict(state, strict=False)
        if unexpected or any(not k.startswith("backbone.") for k in missing):
            raise ValueError(f"{path / 'head.pt'} does not fit this PRM: missing {missing}, unexpected {unexpected}")
        return prm.to(backbone.device).eval()


def prm_loss(logits: torch.Tensor, targets: list[list[int]], labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The PRM's training loss on a batch: binary cross-entropy of the reward logits ``[b, T]`` (from
    ``forward``) read at each row's ``targets`` (its step ends; an ORM's last one only) against ``labels``
    (hard 0/1 or soft in [0, 1], the rows' labels concatenated). Returns the loss **summed** over the
    steps, and the logits read: the mean is over the labelled steps of the global batch, which only the
    caller knows when several processes share it (`prmlab.prm.train.train_prm`)."""
    z = torch.cat([logits[r, t] for r, t in enumerate(targets)])
    return F.binary_cross_entropy_with_logits(z, labels, reduction="sum"), z


def running_min(token_logprobs: torch.Tensor) -> torch.Tensor:
    """[b, T] -> the lowest value at or before each position (0, i.e. log 1, before any counted token)."""
    return torch.cummin(token_logprobs.clamp(max=0.0), dim=-1).values


# ----------------------------------------------------------------------------------------------
# Incremental scoring.


@dataclass
class CachedState:
    """Rows of partial solutions held in the backbone's KV cache."""

    decoder_state: DecoderState
    tokens_scored: int = 0  # tokens run through the backbone so far (a budget measure)
    # likelihood readout: per row, the final hidden state at the last token fed (it predicts the next
    # token) and the running minimum token log-prob of the solution so far
    last_hidden: torch.Tensor | None = None
    running_min: torch.Tensor | None = None

    def _rows(self, index: torch.Tensor) -> dict:
        if self.last_hidden is None:
            return {}
        return {"last_hidden": self.last_hidden[index], "running_min": self.running_min[index]}

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
        hidden, lens, _ = self._feed(state, ids)
        out = CachedState(state, tokens_scored=sum(len(x) for x in ids))
        if self.prm.likelihood:
            out.last_hidden = self._last(hidden, lens)
            out.running_min = torch.zeros(len(ids), device=self.device)
        return out

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
        hidden, lens, chunk = self._feed(sub, ids)
        if not whole:
            state.decoder_state.put(index, sub)
        last = self._last(hidden, lens)
        logits = self.prm.head(last).squeeze(-1).float()
        if self.prm.likelihood:
            lowest = self._update_running_min(state, index, hidden, chunk, lens, last)
            logits = logits + self.prm.likelihood_scale * lowest
        out[rows] = torch.sigmoid(logits).cpu().numpy()
        state.tokens_scored += sum(len(x) for x in ids)
        return out

    def _update_running_min(self, state: CachedState, index, hidden, tokens, lens, last) -> torch.Tensor:
        """Fold the new step's token log-probs (all its tokens but the last, as ``collate`` counts them)
        into the rows' running minimum; remember each row's new last hidden state."""
        width = hidden.shape[1]
        before = torch.cat([state.last_hidden[index][:, None], hidden[:, :-1]], dim=1)  # predicts each new token
        lp = self.prm.token_logprobs(before, tokens)
        counted = torch.arange(width, device=self.device)[None, :] < (lens - 1)[:, None]
        step_min = torch.where(counted, lp, torch.zeros_like(lp)).min(dim=1).values.clamp(max=0.0)
        state.running_min[index] = torch.minimum(state.running_min[index], step_min)
        state.last_hidden[index] = last
        return state.running_min[index]

    def select_(self, state: CachedState, index) -> None:
        """In place, the same as ``state = select(state, index)``, reusing the cache buffers."""
        index = torch.as_tensor(index, dtype=torch.long).to(self.device)
        state.decoder_state = state.decoder_state.select_(index)
        for name, value in state._rows(index).items():
            setattr(state, name, value)

    def select(self, state: CachedState, index) -> CachedState:
        index = torch.as_tensor(index, dtype=torch.long).to(self.device)
        return CachedState(state.decoder_state.select(index), state.tokens_scored, **state._rows(index))

    def _feed(self, state: DecoderState, ids: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Run variable-length token lists through the rows of ``state``: final hidden states [rows, n,
        hidden], each row's number of tokens, and the padded tokens [rows, n]."""
        chunk, valid = right_pad(ids, pad_id(self.prm.tokenizer))
        lens = valid.sum(1).to(self.device)
        chunk = chunk.to(self.device)
        return self.decoder.forward(state, chunk, lens), lens, chunk

    def _last(self, hidden: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
        return hidden[torch.arange(len(lens), device=self.device), lens - 1]
