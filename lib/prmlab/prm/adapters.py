"""Adapters that score steps with published PRM conventions, so a real PRM drops in on a GPU.

Each adapter wraps a Hugging Face model and its tokenizer, builds the input exactly as the PRM was
trained to read it, runs **one forward pass per solution** (batched, right-padded with an attention
mask) and reads one reward in [0, 1] per step. Each is a `prmlab.prm.scorer.TextScorer`, so it follows
the incremental protocol too:

- ``MathShepherdScorer``: Math-Shepherd (peiyi9979/math-shepherd-mistral-7b-prm), a causal LM. Input
  ``question + " " + "\\n".join(step + " ки")``; at each ``ки`` tag, softmax over the logits of the
  "+" and "-" tokens; reward = P("+").
- ``QwenPRMScorer``: Qwen2.5-Math-PRM-7B/72B. Chat-formatted input (system, user, assistant) whose
  assistant turn is ``"<extra_0>".join(steps) + "<extra_0>"``; a 2-class head on every token;
  reward = softmax(logits at each ``<extra_0>``)[1].
- ``TokenClassificationScorer``: TRL's former ``PRMTrainer`` (``AutoModelForTokenClassification``,
  ``num_labels=2``). Input ``[bos] + prompt + (step + separator)*``, labels on the last token of each
  step + separator; reward = softmax(logits there)[1]. PURE's PRM (jinachris/PURE-PRM-7B) reads its
  input this way with separator "\\n" (no BOS: Qwen has none); PURE's own reward is
  ``P(1) - P(0) = 2 * reward - 1``.

``load_scorer(path, convention)`` loads any of them (or prmlab's own PRM) by hub name or local path.

Incremental scoring (``start/append/select``, from ``TextScorer``) keeps the text of each row and
re-scores the whole prefix for every appended step: exact, but it costs the full prefix each time.
prmlab's own PRM has the fast KV-cached path (``CachedPRMScorer``).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from ..batching import length_chunks, pad_id, right_pad
from ..choices import check_choice
from ..models import load_tokenizer
from ..scorer_spec import CONVENTIONS  # declared there: the runner checks scorer names without torch
from .scorer import TextScorer

# The system prompt of the Qwen2.5-Math-PRM model card (and of Qwen2.5-Math-Instruct's CoT mode).
QWEN_SYSTEM_PROMPT = "Please reason step by step, and put your final answer within \\boxed{}."


class HFStepScorer(TextScorer):
    """Common base: encode (convention-specific), batch, one forward per solution, read rewards.

    Subclasses implement ``encode(prompt, steps) -> (ids, positions)`` (the token ids fed to the model
    and the position read for each step) and ``read(logits) -> rewards`` (logits at those positions,
    [n, C] -> [n] in [0, 1]). The model is put in eval mode (dropout off).
    """

    def __init__(self, model, tokenizer, batch_size: int = 8):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.pad_id = pad_id(tokenizer)

    @property
    def device(self):
        return next(self.model.parameters()).device

    # -- convention-specific ------------------------------------------------------------------

    def encode(self, prompt: str, steps: list[str]) -> tuple[list[int], list[int]]:
        raise NotImplementedError

    def read(self, logits: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def logits_at(self, ids: torch.Tensor, mask: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """Model logits at positions ``keep`` (1-D, shared by all rows): [b, len(keep), C]."""
        out = self.model(input_ids=ids, attention_mask=mask)
        logits = out.logits if hasattr(out, "logits") else out[0]  # remote-code models may return tuples
        return logits[:, keep]

    # -- scoring ------------------------------------------------------------------------------

    @torch.no_grad()
    def score(self, prompts: list[str], steps: list[list[str]], batch_size: int | None = None) -> list[np.ndarray]:
        """Reward of every step of every solution: one forward pass per solution, batched."""
        batch_size = batch_size or self.batch_size
        encoded = [self.encode(p, s) for p, s in zip(prompts, steps)]
        results = [np.zeros(0) for _ in prompts]  # solutions without steps: nothing to run
        todo = [i for i, (_, pos) in enumerate(encoded) if pos]
        for chunk in length_chunks([len(encoded[i][0]) for i in todo], max_rows=batch_size):  # less padding
            idx = [todo[j] for j in chunk]
            for i, r in zip(idx, self._forward([encoded[i] for i in idx])):
                results[i] = r
        return results

    def count_tokens(self, prompt: str, steps: list[str]) -> int:
        return len(self.encode(prompt, steps)[0])

    def _forward(self, encoded: list[tuple[list[int], list[int]]]) -> list[np.ndarray]:
        # Right padding keeps every real token at its own position (position ids count from 0 in
        # each row), and causal attention never looks at the padding on the right.
        ids, mask = right_pad([x for x, _ in encoded], self.pad_id)
        # Compute logits only where some row reads them (a vocab-sized head is costly elsewhere).
        keep = sorted({p for _, pos in encoded for p in pos})
        column = {p: j for j, p in enumerate(keep)}
        logits = self.logits_at(ids.to(self.device), mask.to(self.device), torch.tensor(keep, device=self.device))
        out = []
        for b, (_, pos) in enumerate(encoded):
            rows = logits[b, [column[p] for p in pos]].float()
            out.append(self.read(rows).cpu().numpy().astype(np.float64))
        return out

    # -- helpers ------------------------------------------------------------------------------

    def _single_token(self, text: str, what: str) -> int:
        ids = self.tokenizer.encode(text, add_special_tokens=False)
        if len(ids) != 1:
            raise ValueError(f"{what} {text!r} must be a single token of this tokenizer; it encodes to {ids}")
        return ids[0]

    def _tag_positions(self, ids: list[int], tag_id: int, n_steps: int, tag: str) -> list[int]:
        """Positions of the tag token that close the ``n_steps`` steps (the last ``n_steps`` of them)."""
        found = [i for i, t in enumerate(ids) if t == tag_id]
        if len(found) < n_steps:
            raise ValueError(f"expected {n_steps} step tags {tag!r} in the encoded input, found {len(found)}: "
                             "the tag merged with neighbouring text in tokenization")
        if len(found) > n_steps:  # the prompt or a step contains the tag text itself
            warnings.warn(f"{tag!r} occurs {len(found) - n_steps} more time(s) than there are steps; "
                          "reading the last ones", stacklevel=3)
        return found[len(found) - n_steps :]


class MathShepherdScorer(HFStepScorer):
    """Math-Shepherd convention: a causal LM predicts "+" or "-" at a step tag after every step.

    Input (as in the model card): ``f"{question} {output}"`` with ``output = "Step 1: ... ки\\nStep 2:
    ... ки"``; the whole string is encoded at once (special tokens included, as ``tokenizer.encode``
    does there). Reward = softmax over the logits of (good, bad) at each tag position, entry good.
    ``number_steps=True`` prefixes ``"Step i: "`` to steps that lack it (the PRM was trained on them).
    """

    def __init__(self, model, tokenizer, good_token: str = "+", bad_token: str = "-", step_tag: str = "ки",
                 number_steps: bool = False, candidate_ids: tuple[int, int] | None = None, batch_size: int = 8):
        super().__init__(model, tokenizer, batch_size)
        self.step_tag, self.number_steps = step_tag, number_steps
        # The card uses tokenizer.encode(f"{good} {bad}")[1:] (dropping BOS): the two tokens as they
        # follow a space. Tokenizers that do not split that way get each token looked up alone;
        # ``candidate_ids`` (good id, bad id) overrides both for PRMs trained with other tokens.
        pair = tokenizer.encode(f"{good_token} {bad_token}", add_special_tokens=False)
        if candidate_ids is not None:
            self.candidate_ids = list(candidate_ids)
        elif len(pair) == 2:
            self.candidate_ids = pair
        else:
            self.candidate_ids = [self._single_token(good_token, "good token"),
                                  self._single_token(bad_token, "bad token")]
        # As the card: tokenizer.encode(step_tag)[-1].
        self.step_tag_id = tokenizer.encode(step_tag, add_special_tokens=False)[-1]
        self._takes_keep = "logits_to_keep" in _forward_parameters(model)

    def text(self, prompt: str, steps: list[str]) -> str:
        if self.number_steps:
            steps = [s if s.lstrip().startswith("Step ") else f"Step {i}: {s}" for i, s in enumerate(steps, 1)]
        return f"{prompt} " + "\n".join(f"{s} {self.step_tag}" for s in steps)

    def encode(self, prompt, steps):
        if not steps:
            return [], []
        ids = self.tokenizer.encode(self.text(prompt, steps))
        return ids, self._tag_positions(ids, self.step_tag_id, len(steps), self.step_tag)

    def logits_at(self, ids, mask, keep):
        # Only two vocabulary entries matter: project to the vocab only at the tag positions.
        if self._takes_keep:
            logits = self.model(input_ids=ids, attention_mask=mask, logits_to_keep=keep).logits
        else:
            logits = self.model(input_ids=ids, attention_mask=mask).logits[:, keep]
        return logits[..., self.candidate_ids]

    def read(self, logits):
        return torch.softmax(logits, dim=-1)[:, 0]  # P(good | good or bad)


class QwenPRMScorer(HFStepScorer):
    """Qwen2.5-Math-PRM convention: a 2-class head read at a separator token after every step.

    Input (as in the model card): the chat template applied to ``[system, user: prompt, assistant:
    "<extra_0>".join(steps) + "<extra_0>"]`` (``add_generation_prompt=False``), then
    ``tokenizer.encode``. Reward = softmax(logits at each separator)[1]. The real model is a remote-code
    ``Qwen2ForProcessRewardModel`` (``AutoModel``, ``trust_remote_code=True``); any model whose output
    holds per-token 2-class logits works (tests use a tiny ``Qwen2ForTokenClassification``).
    ``use_chat_template=False`` feeds ``prompt + "".join(step + separator)`` instead.
    """

    def __init__(self, model, tokenizer, separator: str = "<extra_0>", system_prompt: str | None = QWEN_SYSTEM_PROMPT,
                 use_chat_template: bool = True, positive_label: int = 1, batch_size: int = 8):
        super().__init__(model, tokenizer, batch_size)
        self.separator, self.system_prompt = separator, system_prompt
        self.use_chat_template, self.positive_label = use_chat_template, positive_label
        self.separator_id = self._single_token(separator, "separator")
        if use_chat_template and getattr(tokenizer, "chat_template", None) is None:
            raise ValueError("the tokenizer has no chat template; pass use_chat_template=False")

    def text(self, prompt: str, steps: list[str]) -> str:
        answer = "".join(s + self.separator for s in steps)  # == sep.join(steps) + sep
        if not self.use_chat_template:
            return prompt + answer
        messages = ([{"role": "system", "content": self.system_prompt}] if self.system_prompt is not None else [])
        messages += [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)

    def encode(self, prompt, steps):
        if not steps:
            return [], []
        ids = self.tokenizer.encode(self.text(prompt, steps))
        return ids, self._tag_positions(ids, self.separator_id, len(steps), self.separator)

    def read(self, logits):
        return torch.softmax(logits, dim=-1)[:, self.positive_label]


class TokenClassificationScorer(HFStepScorer):
    """TRL ``PRMTrainer`` convention (also PURE's PRM): token classification read at step ends.

    Input (as TRL's ``tokenize_row``): ``[bos]`` (if the tokenizer has one) + prompt ids + for every
    step, step ids + separator ids, each piece tokenized alone without special tokens; no separator
    between prompt and first step; one after every step, the last included. Label (here: the read
    position) on the last token of each step + separator. Reward = softmax(logits there)[1].
    """

    def __init__(self, model, tokenizer, separator: str = "\n", positive_label: int = 1, batch_size: int = 8):
        super().__init__(model, tokenizer, batch_size)
        self.separator, self.positive_label = separator, positive_label
        self.separator_ids = tokenizer.encode(separator, add_special_tokens=False)
        if not self.separator_ids:
            raise ValueError(f"separator {separator!r} encodes to no tokens")

    def encode(self, prompt, steps):
        if not steps:
            return [], []
        tok = self.tokenizer
        ids = [tok.bos_token_id] if tok.bos_token_id is not None else []
        ids = ids + tok(prompt, add_special_tokens=False).input_ids
        positions = []
        for step in steps:
            ids = ids + tok(step, add_special_tokens=False).input_ids + self.separator_ids
            positions.append(len(ids) - 1)
        return ids, positions

    def read(self, logits):
        return torch.softmax(logits, dim=-1)[:, self.positive_label]


def _forward_parameters(model) -> set[str]:
    import inspect

    try:
        return set(inspect.signature(model.forward).parameters)
    except (TypeError, ValueError):
        return set()


def load_scorer(name_or_path, convention: str, device: str | None = None, dtype="auto", **kwargs):
    """A step scorer for the PRM at ``name_or_path`` (hub name or local path), read by ``convention``.

    ``convention`` is one of ``CONVENTIONS``: "math-shepherd" (``AutoModelForCausalLM``), "qwen-prm"
    (``AutoModel`` with ``trust_remote_code=True`` when the checkpoint ships its own class, as
    Qwen2.5-Math-PRM does; a checkpoint without remote code, such as the tiny local stand-in of the
    tests, loads as ``AutoModelForTokenClassification``), "token-classification"
    (``AutoModelForTokenClassification``), "prmlab" (``ProcessRewardModel.load``, wrapped in the
    KV-cached ``CachedPRMScorer``; its saved dtype is kept). ``kwargs`` go to the adapter
    (separator, system_prompt, batch_size, ...).
    Nothing is downloaded unless the hub cache lacks the model and the environment allows it.
    """
    check_choice(convention, CONVENTIONS, "PRM convention")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if convention == "prmlab":
        from .model import CachedPRMScorer, ProcessRewardModel

        if kwargs:
            raise TypeError(f"the prmlab convention takes no adapter options; got {sorted(kwargs)}")
        return CachedPRMScorer(ProcessRewardModel.load(name_or_path, device=device))

    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoModelForTokenClassification

    path = str(name_or_path)
    if isinstance(dtype, str) and dtype != "auto":
        dtype = getattr(torch, dtype)
    remote = convention == "qwen-prm"  # only the Qwen PRM needs its own modelling code
    tokenizer = load_tokenizer(path, trust_remote_code=remote)
    if convention == "math-shepherd":
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
        cls = MathShepherdScorer
    elif convention == "qwen-prm":
        config = AutoConfig.from_pretrained(path, trust_remote_code=True)
        remote_class = "AutoModel" in (getattr(config, "auto_map", None) or {})
        auto = AutoModel if remote_class else AutoModelForTokenClassification
        model = auto.from_pretrained(path, dtype=dtype, trust_remote_code=True)
        cls = QwenPRMScorer
    else:
        model = AutoModelForTokenClassification.from_pretrained(path, dtype=dtype)
        cls = TokenClassificationScorer
    return cls(model.to(device), tokenizer, **kwargs)
