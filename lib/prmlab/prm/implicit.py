"""PRIME's implicit process reward model: a causal LM whose log-ratio to a reference is the reward.

Cui et al., "Process Reinforcement through Implicit Rewards" (PRIME, arXiv 2502.01456), after Yuan et
al., "Free Process Rewards without Process Labels": with ``pi_phi`` a causal LM initialised from the SFT
policy and ``pi_ref`` the frozen SFT policy, every token gets the reward

    r_t = beta * (log pi_phi(y_t | y_<t) - log pi_ref(y_t | y_<t)),   beta = 0.05,

and ``pi_phi`` learns online from outcome labels only: the loss is ``BCE(sigmoid(sum_t r_t), outcome)``
(`implicit_prm_loss`, PRIME's ``compute_ce_dpo_loss_rm``). It is a step scorer like any other (`prmlab.prm.scorer`): the
reward of a step is the sum of ``r_t`` over the step's tokens, squashed to ``sigmoid(step reward)`` so
that it reads like a PRM's probability. With the SMC potential ``logit`` (notebook 04) the squashing
cancels: a particle's potential is exactly the step's summed implicit reward. Notebook 01's evaluation
and notebook 04's search apply to it unchanged.

Text is encoded as every PRM in prmlab encodes it: the prompt with special tokens, then each step
followed by the step separator (`prmlab.prm.model.ProcessRewardModel.encode_many`'s convention).
"""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F

from ..batching import pad_id
from ..choices import check_choice
from ..metrics import within_problem_auroc
from ..tokens import TokenBatch, batched_logprobs, response_logprobs
from .scorer import TextScorer

IMPLICIT = "implicit"  # the scorer name of the implicit PRM in notebook 04 (loaded from notebook 03's run)
UPDATE_ORDERS = ("after", "before")


def implicit_prm_loss(q_sum: torch.Tensor, outcome: torch.Tensor, beta: float) -> torch.Tensor:
    """The implicit PRM's cross-entropy loss ``BCE(sigmoid(beta * sum_t q_t), outcome)``, mean over
    responses, where ``q_t = log pi_phi(y_t) - log pi_ref(y_t)`` and ``q_sum`` its masked sum per
    response (PRIME's ``compute_ce_dpo_loss_rm``; computed from logits for numerical stability)."""
    return F.binary_cross_entropy_with_logits(beta * q_sum, outcome.to(q_sum.dtype))


class ImplicitPRM(TextScorer):
    """``pi_phi`` (trained) against ``pi_ref`` (frozen); see the module docstring.

    ``model`` is copied unless ``copy_model=False``; ``ref_model`` is used as given (never trained).
    ``lr`` is the AdamW rate of the online update, ``batch_size`` the rows per forward pass when scoring
    and per optimizer step when updating.
    """

    def __init__(self, model, ref_model, tokenizer, beta: float = 0.05, lr: float = 1e-6, batch_size: int = 64,
                 separator: str = "\n", copy_model: bool = True):
        if beta <= 0:
            raise ValueError(f"beta must be > 0, got {beta}")
        self.model = (copy.deepcopy(model) if copy_model else model).eval()
        self.ref = ref_model.eval()  # read under no_grad only: never trained, and left as the caller has it
        self.tokenizer = tokenizer
        self.beta = float(beta)
        self.batch_size = batch_size
        self.separator = separator
        self.optimizer = torch.optim.AdamW([p for p in self.model.parameters() if p.requires_grad], lr=lr,
                                           betas=(0.9, 0.999), weight_decay=0.0)

    # ---- token rewards on a batch of responses (RL) -------------------------------------------------

    def log_ratio(self, batch: TokenBatch, grad: bool = False, ref: torch.Tensor | None = None) -> torch.Tensor:
        """``log pi_phi - log pi_ref`` of every response token of ``batch`` (``[B, T]``, 0 on padding), in
        one pass of ``pi_phi``; ``ref``: ``pi_ref``'s log-probs of those tokens if already known (it never
        changes)."""
        if ref is None:
            ref = batched_logprobs(self.ref, batch)
        with torch.set_grad_enabled(grad):
            logp = response_logprobs(self.model, batch)
            return logp - ref.to(logp.device)

    def token_rewards(self, batch: TokenBatch, ref: torch.Tensor | None = None) -> torch.Tensor:
        """``r_t = beta * log-ratio`` of every response token of ``batch`` (no gradient; length-bucketed
        passes, `prmlab.tokens.batched_logprobs`); ``ref`` as in `log_ratio`."""
        if ref is None:
            ref = batched_logprobs(self.ref, batch)
        return self.beta * (batched_logprobs(self.model, batch) - ref)

    def update(self, batch: TokenBatch, outcomes: torch.Tensor, group_size: int,
               order: str = "before") -> tuple[torch.Tensor, dict]:
        """One pass of the online update over ``batch`` (RL's rollouts: rows ``i * group_size + j`` answer
        prompt i) in minibatches of ``batch_size`` rows, and the token rewards of ``batch`` that RL uses, in
        PRIME's two orders:

        - ``"before"`` (verl's PRIME recipe's default): update on every minibatch first, then score all of
          ``batch`` with the updated model;
        - ``"after"``: each minibatch's rewards come from the same forward pass that computes its loss,
          i.e. from ``pi_phi`` before that minibatch's update (later minibatches see earlier updates).

        Returns ``([B, T] token rewards, metrics)``, the metrics measured on each minibatch before its
        update (so on rollouts the implicit PRM has not learnt from yet): the mean loss, the accuracy of
        ``sigmoid(sum_t r_t) >= 0.5`` against the outcomes, and the within-group AUROC of ``sum_t r_t``
        (how well it ranks the responses to one prompt, which is all that RLOO's credit can use; the
        rows of a group are consecutive, ``group_size`` of them).
        """
        check_choice(order, UPDATE_ORDERS, "update order")
        rewards = torch.zeros_like(batch.response_mask)
        losses, hits, totals = [], 0, torch.zeros(batch.batch_size, dtype=torch.float64)
        ref = batched_logprobs(self.ref, batch)  # read once: the "before" re-score needs it again
        self.model.train()
        for a in range(0, batch.batch_size, self.batch_size):
            rows = torch.arange(a, min(a + self.batch_size, batch.batch_size))
            sub = batch.rows(rows)
            q = self.log_ratio(sub, grad=True, ref=ref[rows, : sub.response_mask.shape[1]])
            q_sum = (q * sub.response_mask.to(q.device)).sum(1)
            totals[rows] = q_sum.detach().double().cpu()
            loss = implicit_prm_loss(q_sum, outcomes[rows].to(q.device), self.beta)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            losses.append(float(loss.detach()) * len(rows))
            hits += int(((self.beta * q_sum.detach() >= 0).cpu() == outcomes[rows].bool()).sum())
            rewards[rows, : sub.response_mask.shape[1]] = self.beta * q.detach().cpu()
        self.model.eval()
        if order == "before":
            rewards = self.token_rewards(batch, ref)
        k, n = group_size, batch.batch_size
        ranking = (within_problem_auroc(totals.view(-1, k).numpy(), outcomes.view(-1, k).numpy())
                   if n % k == 0 else float("nan"))
        return rewards, {"implicit_prm/loss": sum(losses) / n, "implicit_prm/accuracy": hits / n,
                         "implicit_prm/within_group_auroc": ranking}

    # ---- the scorer protocol (text) -------------------------------------------------------------

    def encode(self, prompts: list[str],
               steps: list[list[str]]) -> list[tuple[list[int], list[int], list[tuple[int, int]]]]:
        """Per solution, the prompt's ids, the steps' ids concatenated, and each step's token span
        (offsets after the prompt)."""
        prompt_ids = self.tokenizer(list(prompts)).input_ids if prompts else []
        flat = [s + self.separator for row in steps for s in row]
        pieces = iter(self.tokenizer(flat, add_special_tokens=False).input_ids if flat else [])
        out = []
        for p_ids, row in zip(prompt_ids, steps):
            resp, spans = [], []
            for _ in row:
                ids = next(pieces)
                spans.append((len(resp), len(resp) + len(ids)))
                resp += ids
            out.append((list(p_ids), resp, spans))
        return out

    def step_rewards(self, prompts: list[str], steps: list[list[str]]) -> list[np.ndarray]:
        """The unsquashed reward of every step: ``beta`` times the summed log-ratio over its tokens."""
        encoded = self.encode(prompts, steps)
        out: list[np.ndarray] = []
        pad = pad_id(self.tokenizer)
        for a in range(0, len(encoded), self.batch_size):
            chunk = encoded[a : a + self.batch_size]
            r = self.token_rewards(TokenBatch.pack([c[0] for c in chunk], [c[1] for c in chunk], pad))
            for i, (_, _, spans) in enumerate(chunk):
                out.append(np.array([float(r[i, s:e].sum()) for s, e in spans], dtype=np.float64))
        return out

    def score(self, prompts: list[str], steps: list[list[str]]) -> list[np.ndarray]:
        """``sigmoid`` of every step's implicit reward (see the module docstring)."""
        return [1.0 / (1.0 + np.exp(-r)) for r in self.step_rewards(prompts, steps)]

    def count_tokens(self, prompt: str, steps: list[str]) -> int:
        """Tokens one scoring of the solution reads (two models read them: policy-sized work twice)."""
        p, resp, _ = self.encode([prompt], [steps])[0]
        return len(p) + len(resp)

    # ---- saving and loading (artifact kind "implicit_prm") ----------------------------------------

    def save(self, folder) -> None:
        """``pi_phi`` in ``folder/phi``, ``pi_ref`` in ``folder/ref`` (each with the tokenizer) and the
        settings in ``folder/implicit_prm.json``."""
        import json
        from pathlib import Path

        from ..models import save_pretrained

        folder = Path(folder)
        save_pretrained(self.model, self.tokenizer, folder / "phi")
        save_pretrained(self.ref, self.tokenizer, folder / "ref")
        (folder / "implicit_prm.json").write_text(json.dumps({"beta": self.beta, "separator": self.separator,
                                                              "batch_size": self.batch_size}))

    @classmethod
    def load(cls, folder, device: str | None = None) -> "ImplicitPRM":
        import json
        from pathlib import Path

        from ..models import load_causal_lm

        folder = Path(folder)
        settings = json.loads((folder / "implicit_prm.json").read_text())
        model, tokenizer = load_causal_lm(folder / "phi", device=device)
        ref, _ = load_causal_lm(folder / "ref", device=device)
        return cls(model, ref, tokenizer, copy_model=False, **settings)
