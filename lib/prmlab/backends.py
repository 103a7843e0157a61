"""Generation backends: where the one sampling loop's tokens come from.

``prmlab`` is `prmlab.sampling.Sampler` (the default: exact, every row seeded by its own random stream);
``vllm`` is `prmlab.vllm_engine.VLLMSampler` on an in-process vLLM engine (an optional extra). Both give
the same `prmlab.sampling.Generation` and `prmlab.sampling.Samples`, so every caller takes either.
"""

from __future__ import annotations

from .choices import check_choice
from .sampling import Sampler, SamplerBase, SamplingConfig

BACKENDS = ("prmlab", "vllm")


def make_sampler(model, tokenizer, config: SamplingConfig | None = None, step_delimiter: str = "\n",
                 backend: str = "prmlab", engine=None) -> SamplerBase:
    """A sampler of ``backend`` (`BACKENDS`); ``engine``: the vLLM engine's
    `prmlab.vllm_engine.EngineSettings` (defaults otherwise)."""
    check_choice(backend, BACKENDS, "backend")
    if backend == "prmlab":
        return Sampler(model, tokenizer, config, step_delimiter=step_delimiter)
    from .vllm_engine import VLLMSampler

    return VLLMSampler(model, tokenizer, config, step_delimiter=step_delimiter, settings=engine)
