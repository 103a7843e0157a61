"""The MLflow server `prmlab ui` runs: MLflow's own, except that a browser which has not chosen a view yet
opens MLflow's "Model training" view (runs tables, charts, compare) rather than its GenAI view (traces),
and MLflow's assistant panel does not open by itself over a third of the page (its button still opens it).

Why a server-side default: MLflow 3.17 and 3.18 keep the view only in the browser's localStorage (key
``mlflow.workflowType``, version 1, default GenAI) or in a ``?workflowType=`` query that its own links drop,
and they ignore the experiment's ``mlflow.experimentKind`` tag when the view toggle is on (it always is). So
the first click into an experiment from any address lands in the GenAI "Overview". Here the served
index.html stores "Model training" before MLflow's script reads it, where the browser has stored no
choice yet; a choice the person makes with the toggle is stored by MLflow under the same key and kept.

Run as ``python -m prmlab.mlflow_app server ...`` (arguments of ``mlflow server``): MLflow's command,
with this module's app registered under ``--app-name prmlab`` (MLflow finds server apps through the
"mlflow.app" entry points of installed packages; registering it here needs no reinstall)."""

from __future__ import annotations

import importlib.abc
import importlib.metadata
import json
from pathlib import Path

APP_NAME = "prmlab"
# MLflow's localStorage entries (its useLocalStorage hook stores key + "_v" + version, JSON-encoded) set where
# the browser has none: the view, and "the assistant was opened once already" (else it opens on first load).
DEFAULTS = {"mlflow.workflowType_v1": "machine_learning", "mlflow.assistant.fab.autoOpenedOnFirstLoad_v1": True}
PRESET = ("<script>try{for(const[k,v]of Object.entries(%s))if(localStorage.getItem(k)===null)"
          "localStorage.setItem(k,JSON.stringify(v))}catch(e){}</script>" % json.dumps(DEFAULTS))


def index_html(page: str) -> str:
    """MLflow's index.html with the defaults first in <head>, so they are stored before MLflow's (deferred)
    script reads them."""
    head = page.index("<head>") + len("<head>")
    return page[:head] + PRESET + page[head:]


def _create_app():
    from flask import Response
    from mlflow.server import app as flask_app
    from mlflow.server.fastapi_app import create_fastapi_app

    index = Path(flask_app.static_folder) / "index.html"
    mlflow_index = flask_app.view_functions["serve"]  # the route of "/": the UI's page

    def serve():
        if not index.is_file():
            return mlflow_index()  # MLflow's own message about a missing UI build
        return Response(index_html(index.read_text()), mimetype="text/html")

    flask_app.view_functions["serve"] = serve
    return create_fastapi_app(flask_app)


def __getattr__(name):  # `app` is built when the server imports it, not when the launcher merely imports this module
    if name == "app":
        globals()["app"] = _create_app()
        return globals()["app"]
    raise AttributeError(name)


class _Registration(importlib.metadata.Distribution):
    """The "mlflow.app" entry point an installed package would declare, naming this module's app."""

    def read_text(self, filename):
        return {"METADATA": "Metadata-Version: 2.1\nName: prmlab-mlflow-app\nVersion: 0\n",
                "entry_points.txt": f"[mlflow.app]\n{APP_NAME} = prmlab.mlflow_app:app\n"}.get(filename)

    def locate_file(self, path):
        return Path(path)


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, *args, **kwargs):
        return None  # finds no modules, only the registration above

    def find_distributions(self, context=importlib.metadata.DistributionFinder.Context()):
        return iter([_Registration()] if context.name in (None, "prmlab-mlflow-app") else [])


def main() -> None:
    import sys

    sys.meta_path.append(_Finder())
    from mlflow.cli import cli  # imported after the registration: `--app-name` lists the apps found at import

    cli(prog_name="mlflow")


if __name__ == "__main__":
    main()
