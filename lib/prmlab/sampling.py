"""Batched sampling with a KV cache, step by step.

``Sampler.start`` encodes prompts into a ``Generation`` (the batch's cached state). ``Sampler.extend``
samples every unfinished row either to its end (EOS or the token budget) or only to the end of its
current reasoning step; a later call resumes from the cached state. ``Generation.select`` reorders,
drops or duplicates rows of the cached state: SMC resampling and beam search use it instead of
recomputing prefixes.

Randomness is counter-based: the uniform number behind the token at generated position t of row r is a
hash of (seed, stream[r], t). A row's text therefore does not depend on which other rows share its batch,
on the batch size, or on whether it was sampled in one call or step by step with pauses. Duplicated rows
get fresh streams so that copies diverge.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from .batching import length_chunks, pad_id, right_pad
from .choices import check_choice
from .kv_decoder import DecoderState, make_decoder


@dataclass
class SamplingConfig:
    """How tokens are drawn."""

    temperature: float = 1.0  # 0 means greedy
    top_p: float = 1.0  # nucleus sampling: keep the smallest set of tokens with this much mass
    max_new_tokens: int = 128  # per row, over all extend calls
    seed: int = 0  # with the row's stream, fixes every draw

    def __post_init__(self):
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")


# ----------------------------------------------------------------------------------------------
# Counter-based uniforms: splitmix64 on int64 tensors (multiplication wraps modulo 2**64).

_GOLDEN = 0x9E3779B97F4A7C15 - (1 << 64)
_MIX1 = 0xBF58476D1CE4E5B9 - (1 << 64)
_MIX2 = 0x94D049BB133111EB - (1 << 64)


def _shr(x: torch.Tensor, k: int) -> torch.Tensor:
    return (x >> k) & ((1 << (64 - k)) - 1)  # logical shift of a signed int64


def _mix64(x: torch.Tensor) -> torch.Tensor:
    x = x + _GOLDEN
    x = (x ^ _shr(x, 30)) * _MIX1
    x = (x ^ _shr(x, 27)) * _MIX2
    return x ^ _shr(x, 31)


def counter_uniform(seed: int, stream: torch.Tensor, position: torch.Tensor) -> torch.Tensor:
    """Uniform numbers in (0, 1), float64, one per (seed, stream, position); a pure function."""
    return uniform_at(stream_key(seed, stream), position)


def stream_key(seed: int, stream: torch.Tensor) -> torch.Tensor:
    """The part of `counter_uniform` that does not depend on the position (computed once per row)."""
    return _mix64(_mix64(torch.full_like(stream, seed)) ^ stream)


def uniform_at(key: torch.Tensor, position: torch.Tensor) -> torch.Tensor:
    """`counter_uniform` from a row's `stream_key`."""
    h = _mix64(key ^ position)
    return (_shr(h, 11).double() + 0.5) * 2.0**-53


def draw_tokens(logits: torch.Tensor, u: torch.Tensor, temperature: float, top_p: float):
    """Sample one token per row by inverse CDF with the given uniforms.

    Returns the tokens and their log-probabilities under softmax(logits / temperature) (before top-p
    truncation; at temperature 1 this is the model's own log-probability). Greedy when temperature is 0.
    """
    if temperature == 0:
        tok = logits.argmax(-1)
        return tok, F.log_softmax(logits.float(), -1).gather(-1, tok[:, None])[:, 0]
    logp = F.log_softmax(logits.float() / temperature, -1)
    probs = logp.exp().double()
    order = None
    if top_p < 1:
        probs, order = probs.sort(-1, descending=True)
        probs = probs * ((probs.cumsum(-1) - probs) < top_p)  # always keeps the most likely token
    cdf = probs.cumsum(-1)
    idx = torch.searchsorted(cdf, (u.to(cdf.device) * cdf[:, -1])[:, None], right=True)[:, 0]
    idx = idx.clamp_(max=logits.shape[-1] - 1)
    tok = idx if order is None else order.gather(-1, idx[:, None])[:, 0]
    return tok, logp.gather(-1, tok[:, None])[:, 0]


# ----------------------------------------------------------------------------------------------


@dataclass
class Generation:
    """A batch of partial generations and their cached state (one row per sequence)."""

    prompt_ids: list[list[int]]
    state: DecoderState
    next_logits: torch.Tensor  # [rows, vocab] distribution of each row's next token
    tokens: torch.Tensor  # [rows, max_new_tokens] generated ids (pad after n_generated)
    logprobs: torch.Tensor  # [rows, max_new_tokens] log-prob of each generated token
    n_generated: torch.Tensor  # [rows]
    finished: torch.Tensor  # [rows] bool: EOS sampled or budget spent
    truncated: torch.Tensor  # [rows] bool: budget spent without EOS
    stream: torch.Tensor  # [rows] random stream of each row
    step_ends: list[list[int]]  # per row, generated-token offsets (exclusive) where each step ends
    next_stream: int = 0
    meta: dict = field(default_factory=dict)

    @property
    def batch_size(self) -> int:
        return len(self.prompt_ids)

    @property
    def done(self) -> bool:
        return bool(self.finished.all())

    def token_ids(self, row: int) -> list[int]:
        return self.tokens[row, : int(self.n_generated[row])].tolist()

    def token_logprobs(self, row: int) -> torch.Tensor:
        return self.logprobs[row, : int(self.n_generated[row])]

    def step_spans(self, row: int) -> list[tuple[int, int]]:
        """(start, end) generated-token offsets of each completed step of ``row``."""
        ends = self.step_ends[row]
        return list(zip([0] + ends[:-1], ends))

    def _streams_for(self, index: torch.Tensor) -> tuple[torch.Tensor, int]:
        """Streams of rows ``index``: the first copy of a row keeps its stream, later copies get fresh ones."""
        stream = self.stream[index].clone()
        seen: set[int] = set()
        next_stream = self.next_stream
        for i, r in enumerate(index.tolist()):
            if r in seen:
                stream[i] = next_stream
                next_stream += 1
            seen.add(r)
        return stream, next_stream

    def select_(self, index) -> None:
        """In place, the same as ``self = self.select(index)``, reusing the cache buffers (see
        ``DecoderState.select_``): cheaper when rows are dropped or duplicated as the batch goes on."""
        index = torch.as_tensor(index, dtype=torch.long)
        for name, value in self._rows(index).items():
            setattr(self, name, value)
        self.state = self.state.select_(index.to(self.state.length.device))

    def select(self, index, keep_capacity: bool = False) -> "Generation":
        """Rows ``index`` of this batch, in that order; a repeated row gets a fresh random stream. The cache
        keeps its whole capacity with ``keep_capacity`` (see ``DecoderState.select``)."""
        index = torch.as_tensor(index, dtype=torch.long)
        state = self.state.select(index.to(self.state.length.device), keep_capacity=keep_capacity)
        return Generation(state=state, meta=dict(self.meta), **self._rows(index))

    def _rows(self, index: torch.Tensor) -> dict:
        """Every per-row field but the cached state, for rows ``index`` (and the streams they get)."""
        stream, next_stream = self._streams_for(index)
        rows = index.tolist()
        return dict(
            prompt_ids=[self.prompt_ids[r] for r in rows],
            next_logits=self.next_logits[index.to(self.next_logits.device)],
            tokens=self.tokens[index],
            logprobs=self.logprobs[index],
            n_generated=self.n_generated[index],
            finished=self.finished[index],
            truncated=self.truncated[index],
            stream=stream,
            step_ends=[list(self.step_ends[r]) for r in rows],
            next_stream=next_stream,
        )


@dataclass
class _WorkingRows:
    """The rows one `Sampler.extend` call computes, and their cache.

    ``cache`` holds every row being extended (it is the generation's own cache when all rows are); the
    rows still computed are its first ``n`` (``view``, sharing its buffers), and ``gen_rows`` says which
    row of the generation each row of ``cache`` holds. `drop_finished` swaps finished rows behind the live
    ones and shrinks the view, so finished rows are never computed again."""

    cache: DecoderState
    view: DecoderState
    n: int
    gen_rows: torch.Tensor  # [rows of cache] the generation's row held at each row
    logits: torch.Tensor  # [n, vocab] next-token logits of the computed rows
    live: torch.Tensor  # [n] bool: still sampling in this call
    key: torch.Tensor  # [rows of cache] the per-row part of the counter-based uniforms (`stream_key`)
    whole: bool  # every row of the generation is being extended
    device: torch.device

    @classmethod
    def start(cls, gen: Generation, rows: torch.Tensor, until: str, seed: int, device) -> "_WorkingRows":
        whole = len(rows) == gen.batch_size
        cache = gen.state if whole else gen.state.select(rows.to(device))
        if until == "end":  # room for every row's whole budget up front, so the views never have to grow
            budget = gen.tokens.shape[1]
            cache._ensure_slots(int((cache.length + (budget - gen.n_generated[rows]).to(device)).max()))
        return cls(cache, cache, len(rows), rows.clone(), gen.next_logits[rows.to(gen.next_logits.device)],
                   torch.ones(len(rows), dtype=torch.bool), stream_key(seed, gen.stream[rows]), whole, device)

    @property
    def rows(self) -> torch.Tensor:
        """The generation's rows being computed."""
        return self.gen_rows[: self.n]

    def drop_finished(self, n_live: int) -> None:
        """Keep computing only the ``n_live`` live rows: swap the finished rows among the first ``n_live``
        with the live rows after them (fewest moves) and shrink the view to the live rows."""
        holes = (~self.live[:n_live]).nonzero()[:, 0]
        movers = self.live[n_live:].nonzero()[:, 0] + n_live
        order = torch.arange(self.n)
        order[holes], order[movers] = movers, holes
        keep = order[:n_live]
        self.view.reorder_(order.to(self.device))
        self.gen_rows[: self.n] = self.rows[order]
        self.key[: self.n] = self.key[: self.n][order]
        self._sync_lengths()
        self.n = n_live
        self.view = self.cache.rows_view(n_live)
        self.logits, self.live = self.logits[keep.to(self.logits.device)], self.live[keep]

    def write_back(self, gen: Generation, until: str) -> None:
        """Hand the rows' cache back to the generation."""
        self._sync_lengths()
        if until == "end":
            # Every row is finished, and a finished row is never extended: only its length is kept
            # (moving the rows' caches back in place would cost a few percent of the whole call).
            gen.state.length[self.gen_rows.to(self.device)] = self.cache.length.clone()
        elif not self.whole:  # paused rows resume from their caches
            gen.state.put(self.gen_rows.to(self.device), self.cache)

    def _sync_lengths(self) -> None:
        if self.view is not self.cache:  # a view's lengths are its own
            self.cache.length[: self.n] = self.view.length


def _note_step_ends(gen: Generation, rows: torch.Tensor, pos: torch.Tensor, is_eos: torch.Tensor,
                    ended: torch.Tensor) -> None:
    """Record where the current step of each ``ended`` row ends (a step never includes the EOS token):
    one python pass over the few rows that ended a step, no tensor reads."""
    ended = ended.nonzero()[:, 0]
    if len(ended):
        for r, n, eos in zip(rows[ended].tolist(), (pos[ended] + 1).tolist(), is_eos[ended].tolist()):
            end = n - 1 if eos else n
            if end > (gen.step_ends[r][-1] if gen.step_ends[r] else 0):
                gen.step_ends[r].append(end)


def _note_stopped(gen: Generation, work: _WorkingRows, finished: torch.Tensor, out_of_budget: torch.Tensor,
                  paused: torch.Tensor) -> None:
    """Mark the rows that finished (EOS or budget) and keep the next-token logits of those that pause
    with more to sample (they resume from them)."""
    rows = work.rows
    if finished.any():
        gen.finished[rows[finished]] = True
        gen.truncated[rows[out_of_budget]] = True
    if paused.any():
        gen.next_logits[rows[paused].to(gen.next_logits.device)] = work.logits[paused.to(work.logits.device)]


class SamplerBase:
    """What every generation backend shares: the model and tokenizer, the sampling config, EOS ids and
    the step rule (a step ends on a token that completes the task's step delimiter).

    A backend implements ``start(prompts, streams=None) -> Generation`` and ``extend(gen, until)``, and
    says whether its log-probs are exactly those the sampler's rule defines (``exact_logprobs``) and
    whether a row's random stream fixes its draws (``exact_streams``)."""

    exact_logprobs = True  # log-probs of the sampled tokens under softmax(logits / temperature), see draw_tokens
    exact_streams = True  # a row's text is fixed by (seed, stream), whatever the batch

    def __init__(self, model, tokenizer, config: SamplingConfig | None = None, step_delimiter: str = "\n"):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.config = config or SamplingConfig()
        self.eos_ids = torch.tensor(_eos_ids(model, tokenizer), dtype=torch.long)
        if not step_delimiter:
            raise ValueError("step_delimiter must be a non-empty string")
        self.step_delimiter = step_delimiter
        # A step ends on a token that completes the delimiter; such a token holds its last character. A
        # longer delimiter ("\n\n") may be spread over several tokens ("\n", "\n"): the text is checked.
        self.step_ids = torch.tensor(_ids_containing(tokenizer, step_delimiter[-1]), dtype=torch.long)
        self.pad_id = pad_id(tokenizer)

    def encode(self, prompts: list[str]) -> list[list[int]]:
        return self.tokenizer(list(prompts)).input_ids if prompts else []

    def completes_step(self, step_tokens: list[int]) -> bool:
        """Whether a step's tokens so far, the last one holding the delimiter's last character, contain the
        whole delimiter (always, for a one-character delimiter)."""
        return len(self.step_delimiter) == 1 or self.step_delimiter in self.tokenizer.decode(step_tokens)

    def release(self, gen: Generation) -> None:
        """Done with ``gen``: it keeps its tokens but can no longer extend."""
        gen.state = None

    def sync(self) -> None:
        """Make the next samples come from the model's current weights (a no-op where sampling reads the
        model itself)."""

    def texts(self, gen: Generation) -> list[str]:
        """Generated text of every row (without EOS)."""
        eos = set(self.eos_ids.tolist())
        return decode_texts(self.tokenizer, [gen.token_ids(r) for r in range(gen.batch_size)], eos)


class Sampler(SamplerBase):
    """Samples from a causal LM with a KV cache; see the module docstring."""

    def __init__(self, model, tokenizer, config: SamplingConfig | None = None, step_delimiter: str = "\n"):
        super().__init__(model, tokenizer, config, step_delimiter)
        self.decoder = make_decoder(model)
        self.device = self.decoder.device
        self.eos_ids, self.step_ids = self.eos_ids.to(self.device), self.step_ids.to(self.device)

    def release(self, gen: Generation) -> None:
        """Done with ``gen``: its cache buffers serve the next ``start`` of the same size (saves the
        allocation; see ``CachedDecoder.recycle``). ``gen`` keeps its tokens but can no longer extend."""
        if gen.state is not None:
            self.decoder.recycle(gen.state)
            gen.state = None

    @torch.no_grad()
    def start(self, prompts: list[str] | list[list[int]], streams=None) -> Generation:
        """Encode prompts (strings, or token ids) and run them through the model."""
        ids = self.encode(prompts) if prompts and isinstance(prompts[0], str) else [list(p) for p in prompts]
        b = len(ids)
        lens = torch.tensor([len(x) for x in ids], dtype=torch.long)
        if b == 0 or int(lens.min()) == 0:
            raise ValueError("every prompt needs at least one token")
        chunk, _ = right_pad(ids, self.pad_id)
        budget = self.config.max_new_tokens
        # room for the whole budget up front: growing a big cache later costs a full copy
        state = self.decoder.empty(b, slots=int(lens.max()) + budget)
        hidden = self.decoder.forward(state, chunk, lens.to(self.device))
        last = hidden[torch.arange(b, device=self.device), (lens - 1).to(self.device)]
        stream = torch.arange(b, dtype=torch.long) if streams is None else torch.as_tensor(streams, dtype=torch.long)
        return Generation(
            prompt_ids=ids,
            state=state,
            next_logits=self.decoder.logits(last),
            tokens=torch.full((b, budget), self.pad_id, dtype=torch.long),
            logprobs=torch.zeros(b, budget),
            n_generated=torch.zeros(b, dtype=torch.long),
            finished=torch.zeros(b, dtype=torch.bool),
            truncated=torch.zeros(b, dtype=torch.bool),
            stream=stream.clone(),
            step_ends=[[] for _ in range(b)],
            next_stream=int(stream.max()) + 1,
        )

    @torch.no_grad()
    def extend(self, gen: Generation, until: str = "end") -> Generation:
        """Sample every unfinished row until it ends (``until='end'``) or ends its current step
        (``until='step'``). Updates ``gen`` in place and returns it.

        A row paused at a step end keeps its cache for the next call. A finished row keeps its tokens,
        log-probs and length, but not its cached keys and values (it is never extended again): sampling
        to the end stops computing finished rows by moving live rows over them (`_WorkingRows`)."""
        check_choice(until, ("end", "step"), "value of until")
        rows = (~gen.finished).nonzero()[:, 0]
        if len(rows) == 0:
            return gen
        work = _WorkingRows.start(gen, rows, until, self.config.seed, self.device)
        stop_ids = self.eos_ids.cpu(), self.step_ids.cpu()
        while True:
            tok, pos, is_eos, is_step = self._draw(gen, work, *stop_ids)
            out_of_budget = (pos + 1 >= gen.tokens.shape[1]) & work.live & ~is_eos
            finished_now = is_eos | out_of_budget
            _note_step_ends(gen, work.rows, pos, is_eos, ended=is_eos | is_step | out_of_budget)
            feed = work.live & ~finished_now  # EOS and budget-ending tokens need no forward pass
            if feed.any():
                hidden = self.decoder.forward(work.view, tok[:, None].to(self.device), feed.long().to(self.device))
                work.logits = self.decoder.logits(hidden[:, 0])
            stopped = finished_now | (is_step if until == "step" else torch.zeros_like(work.live))
            _note_stopped(gen, work, finished_now, out_of_budget, paused=stopped & feed)
            work.live = work.live & ~stopped
            n_live = int(work.live.sum())
            if n_live == 0:
                break
            # Stop computing finished rows once a quarter of the working rows are; only when sampling to
            # the end (a step is short: moving rows would cost more than it saves).
            if until == "end" and n_live <= 3 * work.n // 4:
                work.drop_finished(n_live)
        work.write_back(gen, until)
        return gen

    def _draw(self, gen: Generation, work: "_WorkingRows", eos_ids: torch.Tensor, step_ids: torch.Tensor):
        """Draw the next token of every computed row and record it (and its log-prob) for the live ones.
        Returns the tokens, their positions, and which live rows drew EOS or completed a step delimiter."""
        cfg, rows, live = self.config, work.rows, work.live
        pos = gen.n_generated[rows]
        tok, lp = draw_tokens(work.logits, uniform_at(work.key[: work.n], pos), cfg.temperature, cfg.top_p)
        tok, lp = tok.cpu(), lp.float().cpu()
        live_rows = rows[live]
        gen.tokens[live_rows, pos[live]] = tok[live]
        gen.logprobs[live_rows, pos[live]] = lp[live]
        gen.n_generated[live_rows] += 1
        is_eos = torch.isin(tok, eos_ids) & live
        is_step = torch.isin(tok, step_ids) & live
        if len(self.step_delimiter) > 1 and is_step.any():
            self._keep_completed_delimiters(gen, rows, pos, is_step)
        return tok, pos, is_eos, is_step

    def _keep_completed_delimiters(self, gen: Generation, rows, pos, is_step) -> None:
        """Clear ``is_step`` where the row's current step, up to its token just drawn, does not yet
        complete the (multi-character) delimiter (`completes_step`): e.g. a single newline when steps are
        paragraphs."""
        for i in is_step.nonzero()[:, 0].tolist():
            r, end = int(rows[i]), int(pos[i]) + 1
            start = gen.step_ends[r][-1] if gen.step_ends[r] else 0
            if not self.completes_step(gen.tokens[r, start:end].tolist()):
                is_step[i] = False


def _eos_ids(model, tokenizer) -> list[int]:
    ids = set()
    for src in (getattr(model, "generation_config", None), getattr(model, "config", None)):
        e = getattr(src, "eos_token_id", None) if src is not None else None
        ids.update(e if isinstance(e, (list, tuple)) else ([e] if e is not None else []))
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    if not ids:
        raise ValueError("the model and tokenizer define no EOS token")
    return sorted(ids)


def _ids_containing(tokenizer, text: str) -> list[int]:
    """Every vocabulary id whose decoded text contains ``text`` (a step ends on such a token)."""
    vocab = tokenizer.get_vocab()
    special = set(tokenizer.all_special_ids)
    return sorted(i for i in vocab.values() if i not in special and text in tokenizer.decode([i]))


@dataclass
class Samples:
    """Finished samples: ``n`` per prompt, row ``i * n + j`` is sample j of prompt i.

    Every row keeps what its consumers need, from one sampling loop: the prompt's token ids, the sampled
    token ids (the EOS token included when one was sampled) with their log-probs, and the reasoning
    steps both as token spans (``(start, end)`` offsets into ``token_ids``, end exclusive) and as text
    (each span decoded, its delimiter stripped). Evaluation, search pools, Monte Carlo labels and RL
    credit assignment all read steps from here.
    """

    prompts: list[str]
    n: int
    prompt_ids: list[list[int]]  # per row, the prompt's token ids
    texts: list[str]  # per row, the generated text (without EOS)
    token_ids: list[list[int]]  # per row, the generated ids (EOS included when sampled)
    logprobs: list[torch.Tensor]  # per row, log-prob of each generated token (see `draw_tokens`)
    step_spans: list[list[tuple[int, int]]]  # per row, token span of each step
    steps: list[list[str]]  # per row, text of each step
    truncated: list[bool]  # per row, the token budget ran out before EOS

    def of(self, i: int) -> list[str]:
        return self.texts[i * self.n : (i + 1) * self.n]

    def steps_of(self, i: int) -> list[list[str]]:
        return self.steps[i * self.n : (i + 1) * self.n]

    @property
    def steps_by_prompt(self) -> list[list[list[str]]]:
        """``[prompt][sample]`` the steps of every sample (what `prmlab.prm.scorer.score_samples` reads)."""
        return [self.steps_of(i) for i in range(len(self.prompts))]

    @property
    def finished(self) -> list[bool]:
        """Per row, ended by EOS (not by the token budget)."""
        return [not t for t in self.truncated]

    @property
    def num_tokens(self) -> int:
        return sum(len(t) for t in self.token_ids)

    def groups(self, prompts) -> "Samples":
        """The samples of the prompts at indices ``prompts``, in that order (all ``n`` of each)."""
        rows = [i * self.n + j for i in prompts for j in range(self.n)]
        return self._pick(rows, [self.prompts[i] for i in prompts], self.n)

    def rows(self, rows) -> "Samples":
        """The rows ``rows`` (any, in that order), one sample per prompt (``n = 1``, prompts repeated)."""
        return self._pick(list(rows), [self.prompts[r // self.n] for r in rows], 1)

    def _pick(self, rows: list[int], prompts: list[str], n: int) -> "Samples":
        pick = lambda xs: [xs[r] for r in rows]  # noqa: E731
        return Samples(prompts, n, pick(self.prompt_ids), pick(self.texts), pick(self.token_ids), pick(self.logprobs),
                       pick(self.step_spans), pick(self.steps), pick(self.truncated))

    @staticmethod
    def concat(parts: list["Samples"]) -> "Samples":
        """One set of samples from several with the same ``n``, prompts in order."""
        if not parts or len({p.n for p in parts}) != 1:
            raise ValueError("concat needs at least one part, all with the same n")
        join = lambda name: [x for p in parts for x in getattr(p, name)]  # noqa: E731
        return Samples(join("prompts"), parts[0].n, join("prompt_ids"), join("texts"), join("token_ids"),
                       join("logprobs"), join("step_spans"), join("steps"), join("truncated"))


def decode_texts(tokenizer, pieces: list[list[int]], eos: set[int]) -> list[str]:
    """The text of each token list, EOS tokens left out (a sample's text never shows them)."""
    return tokenizer.batch_decode([[t for t in p if t not in eos] for p in pieces])


def decode_steps(tokenizer, pieces: list[list[int]], eos: set[int], delimiter: str = "\n") -> list[str]:
    """The text of each step from its token ids: decoded as `decode_texts`, the delimiter stripped from
    both ends. The one rule for a step's text, in finished samples (`step_texts`) and in partial ones
    (`prmlab.decoding.rows.RowBatch`)."""
    return [text.strip(delimiter) for text in decode_texts(tokenizer, pieces, eos)]


def step_texts(tokenizer, ids: list[int], spans: list[tuple[int, int]], eos: set[int],
               delimiter: str = "\n") -> tuple[list[tuple[int, int]], list[str]]:
    """The steps of one sample: spans and their text (`decode_steps`).

    A span with no visible text (a blank line) is not a step of its own: its tokens join the next step
    (or the previous one at the end), so that spans still cover every generated token but EOS and the
    steps are those a reader sees (the non-blank lines, as ``task.split_steps`` finds them).
    """
    merged: list[list[int]] = []
    texts: list[str] = []
    pending = None  # start of blank spans waiting to join the next step
    for (a, b), text in zip(spans, decode_steps(tokenizer, [ids[a:b] for a, b in spans], eos, delimiter)):
        if not text.strip():
            pending = a if pending is None else pending
            continue
        merged.append([a if pending is None else pending, b])
        texts.append(text)
        pending = None
    if pending is not None and merged:
        merged[-1][1] = spans[-1][1]
    return [tuple(m) for m in merged], texts


def sample(sampler: SamplerBase, prompts: list[str], n: int = 1, batch_size: int = 256,
           progress: bool = False, streams: list[int] | None = None, desc: str = "sampling") -> Samples:
    """``n`` complete samples per prompt: the one sampling loop of prmlab.

    Each prompt is encoded and run through the model once, and its cached state copied to its ``n``
    rows (``Generation.select``); prompts go in order of length, about ``batch_size`` rows a batch, so
    that little prefill is spent on padding. Sample j of prompt i draws from random stream
    ``streams[i] + j`` (default ``streams[i] = i * n``), so results depend neither on ``batch_size`` nor
    on the other prompts.
    """
    from tqdm.auto import tqdm

    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    ids = sampler.encode(prompts)
    keys = [i * n for i in range(len(ids))] if streams is None else [int(s) for s in streams]
    if len(keys) != len(ids):
        raise ValueError(f"streams has {len(keys)} entries for {len(ids)} prompts")
    eos = set(sampler.eos_ids.tolist())
    rows: list = [None] * (len(ids) * n)
    chunks = length_chunks([len(x) for x in ids], max_rows=max(1, batch_size // n))
    for chunk in tqdm(chunks, desc=desc, disable=not progress, leave=False):
        gen = sampler.start([ids[k] for k in chunk])
        # start made room for the whole budget: keeping it spares extend a regrowth (a full copy of the cache)
        gen = gen.select(torch.arange(len(chunk)).repeat_interleave(n), keep_capacity=True)
        gen.stream = torch.tensor([keys[k] + j for k in chunk for j in range(n)], dtype=torch.long)
        sampler.extend(gen, until="end")
        for r, text in enumerate(sampler.texts(gen)):
            tok = gen.token_ids(r)
            spans, steps = step_texts(sampler.tokenizer, tok, gen.step_spans(r), eos, sampler.step_delimiter)
            k, j = chunk[r // n], r % n
            rows[k * n + j] = (text, tok, gen.token_logprobs(r).clone(), spans, steps, bool(gen.truncated[r]))
        sampler.release(gen)
    texts, tok, lps, spans, steps, trunc = (list(x) for x in zip(*rows)) if rows else ([],) * 6
    return Samples(prompts=list(prompts), n=n,
                   prompt_ids=[ids[i] for i in range(len(ids)) for _ in range(n)], texts=texts, token_ids=tok,
                   logprobs=lps, step_spans=spans, steps=steps, truncated=trunc)
