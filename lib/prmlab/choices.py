"""The one error for a value that is not among the valid choices (a scheme, a profile, a notebook, ...).

Every "unknown X" error of the library reads the same way, names the bad value and lists what would
have worked: ``unknown aggregation 'median'; valid choices: min, last, prod, mean``.
"""

from __future__ import annotations

from collections.abc import Iterable


def unknown_choice(value, choices: Iterable, what: str) -> ValueError:
    """The error for ``value`` not being one of ``choices`` (``what`` names the kind of value); raise it."""
    return ValueError(f"unknown {what} {value!r}; valid choices: {', '.join(str(c) for c in choices)}")


def check_choice(value, choices: Iterable, what: str):
    """``value`` itself when it is one of ``choices``, else `unknown_choice`'s error is raised."""
    choices = tuple(choices)
    if value not in choices:
        raise unknown_choice(value, choices, what)
    return value
