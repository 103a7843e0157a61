"""Where things live, resolved from the project root whatever the current directory.

JupyterLab starts kernels in the notebook's folder and papermill in the caller's; resolving every
path from the project root keeps one MLflow store and one ``runs/`` folder for both.
"""

from __future__ import annotations

import os
from pathlib import Path


def _is_root(path: Path) -> bool:
    return (path / "pyproject.toml").is_file() and (path / "lib" / "prmlab").is_dir()


def project_root() -> Path:
    """``$PRMLAB_ROOT`` if set, else the checkout this package was installed from (editable install),
    else the nearest parent of the current directory that is a prmlab checkout."""
    env = os.environ.get("PRMLAB_ROOT")
    if env:
        return Path(env).resolve()
    here = Path(__file__).resolve().parents[2]
    if _is_root(here):
        return here
    for parent in [Path.cwd(), *Path.cwd().parents]:
        if _is_root(parent):
            return parent
    raise FileNotFoundError(
        "cannot find the prmlab project root: install prmlab in editable mode (pip install -e .), "
        "run from inside the checkout, or set PRMLAB_ROOT"
    )


def runs_dir() -> Path:
    return project_root() / "runs"


def notebooks_dir() -> Path:
    return project_root() / "notebooks"


def reports_dir() -> Path:
    return project_root() / "reports"
