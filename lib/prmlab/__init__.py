"""prmlab: a notebook-first workbench for process supervision of LLM reasoning."""

__version__ = "0.1.0"
