"""Decoding with a process reward model: best-of-N, (weighted) majority, beam search and a generic
Sequential Monte Carlo core (`prmlab.decoding.smc`, `prmlab.decoding.resampling`) that knows nothing
about language models; a thin binding makes LLM partial solutions its particles."""
