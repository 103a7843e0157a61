"""Decoding with a process reward model: best-of-N, (weighted) majority, beam search, DVTS and a generic
Sequential Monte Carlo core (`prmlab.decoding.smc`, `prmlab.decoding.resampling`) that knows nothing
about language models; `prmlab.decoding.particle_filter` makes LLM partial solutions its particles.
Decoding knows nothing of any task either: every method takes the task's answer function."""
