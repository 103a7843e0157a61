"""Generation on vLLM: the sampler interface (`prmlab.sampling.SamplerBase`) over an in-process engine.

``VLLMSampler`` is what ``backend = "vllm"`` gives (`prmlab.backends.make_sampler`). It returns the same
`Generation` and `Samples` as prmlab's `Sampler`, token ids, per-token log-probs, step spans, finished
and truncated flags, so evaluation pools, Monte Carlo labels, best-of-N, beam search, DVTS, SMC and RL
rollouts run on it unchanged. What differs is where the work is done:

* Rows continue from token ids (the prompt's and those generated so far), never from re-tokenized text.
  A row resubmitted after a pause (SMC, beams) is prefilled from vLLM's prefix cache, which is on.
* A step ends where the sampler's rule says (`SamplerBase.completes_step`): the engine stops on any
  token holding the delimiter's last character (``stop_token_ids``), and a multi-character delimiter
  not yet complete sends the row back for more.
* Log-probs are the engine's ``processed_logprobs``: at the sampling temperature, like the sampler's;
  after top-p truncation, unlike the sampler's (equal when ``top_p = 1``).
* Randomness: one global seed per engine (`EngineSettings.seed`). A row's random stream is ignored:
  vLLM on CPU cannot take per-request seeds (they kill the engine), so rows depend on their batch and
  results repeat only for the same batches, hardware and vLLM version (``exact_streams = False``).

One engine per process (`engine_for`), built from the model's current weights, written once to a
temporary folder. The engine follows the model: before generating, a sampler whose model has changed
since the engine last saw it (a parameter's in-place version counter moved, as an optimizer step does,
or it is another model of the same shape) loads the model's weights into the engine and resets its
prefix cache, as TRL's colocated vLLM does. A LoRA model is merged for the copy (its adapters are
merged, read and unmerged; the engine never sees them).
"""

from __future__ import annotations

import gc
import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass, fields

import torch

from .models import unwrap
from .sampling import Generation, SamplerBase, SamplingConfig

VLLM_VERSION = "0.32.0"  # the release the engine's weight-loading path is written and tested against


@dataclass(frozen=True)
class EngineSettings:
    """How the engine is built (part of what selects the one engine of a process)."""

    dtype: str = "auto"  # auto (the model's own) | float32 | bfloat16 | float16
    seed: int = 0  # the engine's one global seed
    max_model_len: int = 0  # longest prompt + generation; 0: the model's positions, at most 4096
    tensor_parallel_size: int = 1  # GPUs one model is split over (vLLM's tensor parallelism)
    gpu_memory_utilization: float = 0.5  # GPU: share of its memory for weights and KV cache (the trainer needs the rest)
    cpu_kv_cache_gib: float = 2.0  # CPU: KV cache size (VLLM_CPU_KVCACHE_SPACE, unless already set)
    enforce_eager: bool = True  # no graph capture or compilation: starts in about 25 s instead of 65 s on 2 cores

    @classmethod
    def from_env(cls, environ=None) -> "EngineSettings":
        """The defaults, with ``PRMLAB_VLLM_<FIELD>`` variables on top (e.g. ``PRMLAB_VLLM_TENSOR_PARALLEL_SIZE=4
        prmlab run 04 --profile paper``): how a notebook's engine is set without a parameter per field."""
        environ = os.environ if environ is None else environ
        values = {}
        for f in fields(cls):
            raw = environ.get(f"PRMLAB_VLLM_{f.name.upper()}")
            if raw is None:
                continue
            kind = type(f.default)
            if kind is bool:
                if raw.lower() not in ("1", "0", "true", "false", "yes", "no"):
                    raise ValueError(f"PRMLAB_VLLM_{f.name.upper()}={raw!r}: not a yes/no value")
                values[f.name] = raw.lower() in ("1", "true", "yes")
            else:
                try:
                    values[f.name] = kind(raw)
                except ValueError:
                    raise ValueError(f"PRMLAB_VLLM_{f.name.upper()}={raw!r}: not a {kind.__name__}") from None
        return cls(**values)


def _environment(settings: EngineSettings) -> None:
    """vLLM reads these when it is imported: the engine runs in this process (its weights can be loaded by
    reference) and reports no usage anywhere."""
    os.environ["VLLM_NO_USAGE_STATS"] = "1"
    os.environ["VLLM_DO_NOT_TRACK"] = "1"
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", f"{settings.cpu_kv_cache_gib:g}")


def engine_weights(model) -> dict[str, torch.Tensor]:
    """The weights the engine loads, under the base model's checkpoint names; LoRA adapters merged in."""
    if not hasattr(model, "merge_adapter"):
        return {k: v.detach() for k, v in model.state_dict().items()}
    model.merge_adapter()
    try:
        out = {}
        for key, value in model.state_dict().items():
            if "lora_" in key or "modules_to_save" in key:
                continue
            out[key.removeprefix("base_model.model.").replace(".base_layer.", ".")] = value.detach().clone()
        return out
    finally:
        model.unmerge_adapter()


def fingerprint(model) -> tuple[int, int]:
    """Changes whenever a parameter is written in place (optimizer steps, ``load_state_dict``) or the model
    is another object: (id, sum of the parameters' version counters)."""
    return id(model), sum(p._version for p in model.parameters())


def _shape_key(model, settings: EngineSettings) -> str:
    config = unwrap(model).config.to_dict()
    for k in ("_name_or_path", "name_or_path", "transformers_version", "dtype", "torch_dtype"):
        config.pop(k, None)
    return json.dumps({"config": config, "settings": asdict(settings)}, sort_keys=True, default=str)


def _load_weights(worker, weights):  # runs on the engine's worker (in this process: by reference)
    # vLLM's in-place reload: the CPU backend repacks weights after loading, so a model's own
    # load_weights cannot be called a second time
    worker.reload_weights(weights_iterator=iter(weights), is_checkpoint_format=True)


class Engine:
    """An in-process vLLM ``LLM`` built from a transformers model, and the model state it holds."""

    def __init__(self, model, settings: EngineSettings):
        _environment(settings)
        from vllm import LLM

        self.settings = settings
        self.key = _shape_key(model, settings)
        base = unwrap(model)
        positions = getattr(base.config, "max_position_embeddings", 4096) or 4096
        self.max_model_len = settings.max_model_len or min(int(positions), 4096)
        dtype = settings.dtype if settings.dtype != "auto" else str(next(model.parameters()).dtype).removeprefix("torch.")
        t0 = time.perf_counter()
        # vLLM's CPU worker would cut this process to one torch thread and disable torch.set_num_threads: the
        # trainer shares the process, so both keep the threads they had
        threads, set_threads = torch.get_num_threads(), torch.set_num_threads
        ours = "OMP_NUM_THREADS" not in os.environ
        if ours:
            os.environ["OMP_NUM_THREADS"] = str(threads)  # read by vLLM at start-up only
        with tempfile.TemporaryDirectory(prefix="prmlab-vllm-") as folder:
            base.save_pretrained(folder, state_dict=engine_weights(model))
            self.llm = LLM(model=folder, skip_tokenizer_init=True, dtype=dtype, seed=settings.seed,
                           enable_prefix_caching=True, logprobs_mode="processed_logprobs",
                           max_model_len=self.max_model_len, enforce_eager=settings.enforce_eager,
                           tensor_parallel_size=settings.tensor_parallel_size,
                           gpu_memory_utilization=settings.gpu_memory_utilization)
        torch.set_num_threads = set_threads
        torch.set_num_threads(threads)
        if ours:
            del os.environ["OMP_NUM_THREADS"]
        self.startup_s = time.perf_counter() - t0
        self.holds = fingerprint(model)
        self.sync_s, self.syncs, self.generate_s = 0.0, 0, 0.0

    def follow(self, model) -> None:
        """Load ``model``'s weights unless the engine holds them already."""
        if fingerprint(model) != self.holds:
            self.load(model)

    def load(self, model) -> None:
        t0 = time.perf_counter()
        weights = list(engine_weights(model).items())
        self.llm.collective_rpc(_load_weights, args=(weights,))
        self.llm.reset_prefix_cache()  # cached keys and values belong to the old weights
        self.holds = fingerprint(model)
        self.sync_s += time.perf_counter() - t0
        self.syncs += 1

    def generate(self, prompts: list[list[int]], params: list) -> list:
        from vllm import TokensPrompt

        t0 = time.perf_counter()
        out = self.llm.generate([TokensPrompt(prompt_token_ids=p) for p in prompts], params, use_tqdm=False)
        self.generate_s += time.perf_counter() - t0
        return out

    def close(self) -> None:
        del self.llm
        gc.collect()


_ENGINE: Engine | None = None


def engine_for(model, settings: EngineSettings | None = None) -> Engine:
    """The process's engine for ``model``'s shape and ``settings``: the running one, or a new one (the old
    one closed first: one engine holds a KV cache of gigabytes)."""
    global _ENGINE
    settings = settings or EngineSettings.from_env()
    key = _shape_key(model, settings)
    if _ENGINE is not None and _ENGINE.key != key:
        close_engine()
    if _ENGINE is None:
        _ENGINE = Engine(model, settings)
    return _ENGINE


def close_engine() -> None:
    """Stop the process's engine, if any (its memory is freed)."""
    global _ENGINE
    if _ENGINE is not None:
        _ENGINE.close()
        _ENGINE = None


@dataclass
class EngineRows:
    """A `Generation`'s state on this backend: only each row's length (the keys and values live in the
    engine's prefix cache)."""

    length: torch.Tensor

    def select(self, index, keep_capacity: bool = False) -> "EngineRows":
        return EngineRows(self.length[torch.as_tensor(index, dtype=torch.long)].clone())

    def select_(self, index) -> "EngineRows":
        return self.select(index)


class VLLMSampler(SamplerBase):
    """`prmlab.sampling.Sampler`'s interface on the process's vLLM engine; see the module docstring."""

    exact_logprobs = False  # the engine's kernels, not the trainer's forward pass: RL recomputes them
    exact_streams = False

    def __init__(self, model, tokenizer, config: SamplingConfig | None = None, step_delimiter: str = "\n",
                 settings: EngineSettings | None = None):
        super().__init__(model, tokenizer, config, step_delimiter)
        self.engine = engine_for(model, settings)
        self._eos, self._step = set(self.eos_ids.tolist()), set(self.step_ids.tolist())

    def sync(self) -> None:
        self.engine.follow(self.model)

    def start(self, prompts: list[str] | list[list[int]], streams=None) -> Generation:
        """Rows for ``prompts`` (strings, or token ids); nothing is computed until ``extend``."""
        ids = self.encode(prompts) if prompts and isinstance(prompts[0], str) else [list(p) for p in prompts]
        b, budget = len(ids), self.config.max_new_tokens
        if b == 0 or min(len(x) for x in ids) == 0:
            raise ValueError("every prompt needs at least one token")
        longest = max(len(x) for x in ids) + budget
        if longest > self.engine.max_model_len:
            raise ValueError(f"a prompt plus max_new_tokens takes {longest} tokens, more than the engine's "
                             f"max_model_len {self.engine.max_model_len} (EngineSettings.max_model_len)")
        stream = torch.arange(b, dtype=torch.long) if streams is None else torch.as_tensor(streams, dtype=torch.long)
        return Generation(prompt_ids=ids, state=EngineRows(torch.tensor([len(x) for x in ids])),
                          next_logits=torch.zeros(b, 0), tokens=torch.full((b, budget), self.pad_id, dtype=torch.long),
                          logprobs=torch.zeros(b, budget), n_generated=torch.zeros(b, dtype=torch.long),
                          finished=torch.zeros(b, dtype=torch.bool), truncated=torch.zeros(b, dtype=torch.bool),
                          stream=stream.clone(), step_ends=[[] for _ in range(b)], next_stream=int(stream.max()) + 1)

    def extend(self, gen: Generation, until: str = "end") -> Generation:
        """As `prmlab.sampling.Sampler.extend`: every unfinished row to its end or to the end of its step."""
        from vllm import SamplingParams

        from .choices import check_choice

        check_choice(until, ("end", "step"), "value of until")
        self.sync()
        cfg, budget = self.config, gen.tokens.shape[1]
        stops = sorted(self._eos | (self._step if until == "step" else set()))
        live = (~gen.finished).nonzero()[:, 0].tolist()
        while live:
            params = [SamplingParams(temperature=cfg.temperature, top_p=cfg.top_p, logprobs=0, detokenize=False,
                                     max_tokens=budget - int(gen.n_generated[r]), stop_token_ids=stops)
                      for r in live]
            outputs = self.engine.generate([gen.prompt_ids[r] + gen.token_ids(r) for r in live], params)
            again = []
            for r, out in zip(live, outputs):
                c = out.outputs[0]
                lps = [d[t].logprob for d, t in zip(c.logprobs, c.token_ids)]
                if not self._take(gen, r, list(c.token_ids), lps, until):
                    again.append(r)  # stopped on a delimiter character that did not complete a step
            live = again
        gen.state.length = torch.tensor([len(p) for p in gen.prompt_ids]) + gen.n_generated
        return gen

    def _take(self, gen: Generation, r: int, tokens: list[int], lps: list[float], until: str) -> bool:
        """Append a row's new tokens with the sampler's stop rule (`prmlab.sampling.Sampler.extend`); whether
        the row stopped (finished, or paused at the end of a step)."""
        budget, start = gen.tokens.shape[1], int(gen.n_generated[r])
        gen.tokens[r, start : start + len(tokens)] = torch.tensor(tokens, dtype=torch.long)
        gen.logprobs[r, start : start + len(tokens)] = torch.tensor(lps, dtype=torch.float32)
        ends = gen.step_ends[r]
        for pos in range(start, start + len(tokens)):
            tok = tokens[pos - start]
            is_eos = tok in self._eos
            is_step = tok in self._step and self.completes_step(gen.tokens[r, (ends[-1] if ends else 0) : pos + 1].tolist())
            out_of_budget = pos + 1 >= budget and not is_eos
            if is_eos or is_step or out_of_budget:
                end = pos if is_eos else pos + 1  # a step never includes the EOS token
                if end > (ends[-1] if ends else 0):
                    ends.append(end)
            if is_eos or out_of_budget or (is_step and until == "step"):
                gen.n_generated[r] = pos + 1
                gen.finished[r] = is_eos or out_of_budget
                gen.truncated[r] = out_of_budget
                return True
        gen.n_generated[r] = start + len(tokens)
        return False
