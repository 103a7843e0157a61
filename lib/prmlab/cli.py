"""The ``prmlab`` command: run and sweep notebooks, build reports, start the MLflow UI and JupyterLab."""

from __future__ import annotations

import argparse
import itertools
import logging
import os
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from . import notebooks, runner, studies, tracking
from .choices import unknown_choice
from .paths import project_root
from .profiles import PROFILES


def _add_run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("notebook", help="notebook number (00), name (00_policy_sft) or path")
    p.add_argument("-p", "--param", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                   help="set a notebook parameter (repeatable)")
    p.add_argument("--profile", default="tiny", help=f"parameter set: {' | '.join(PROFILES)} (default: tiny)")


def cmd_run(args) -> int:
    tags = dict(t.split("=", 1) for t in args.tag)
    plan = runner.plan(args.notebook, args.profile, args.param)
    runner.check_upstream([plan])
    print(f"running {plan.notebook.name} (profile {plan.profile}) with {plan.parameters}", flush=True)
    if args.verbose:  # papermill logs the notebook's outputs at level INFO
        logging.basicConfig(level=logging.INFO, format="%(message)s")
    t0 = time.perf_counter()
    try:
        run_id, output = runner.execute(plan, tags=tags, log_output=args.verbose,
                                        progress=None if args.quiet else sys.stderr)
    except runner.RunFailed as e:
        print(f"FAILED: {e}", file=sys.stderr)
        print(f"run_id: {e.run_id}\nnotebook: {e.output}")
        return 1
    except KeyboardInterrupt as e:
        run_id = getattr(e, "run_id", None)
        if run_id is None:
            raise
        print(f"KILLED: {plan.notebook.name} interrupted ({e or 'Ctrl-C'})", file=sys.stderr)
        print(f"run_id: {run_id}\nnotebook: {e.output}")
        return 143 if isinstance(e, runner.Terminated) else 130
    print(f"finished in {time.perf_counter() - t0:.0f} s")
    print(f"run_id: {run_id}\nnotebook: {output}\ntracking: {tracking.tracking_uri()}")
    return 0


def _grid(specs: list[str], declared: dict) -> list[dict]:
    axes = []
    for spec in specs:
        if "=" not in spec:
            raise ValueError(f"grid axis must look like NAME=V1,V2; got {spec!r}")
        name, values = spec.split("=", 1)
        if name not in declared:
            raise unknown_choice(name, declared, "parameter")
        if any(not v.strip() for v in values.split(",")):
            raise ValueError(f"grid axis {spec!r} has an empty value; give NAME=V1,V2 with no empty entry")
        axes.append([(name, v.strip()) for v in values.split(",")])
    return [dict(combo) for combo in itertools.product(*axes)] if axes else [{}]


def cmd_sweep(args) -> int:
    base = runner.plan(args.notebook, args.profile, args.param)  # validates notebook, profile, -p
    grid = _grid(args.grid, base.declared)
    if args.seeds:
        if "seed" not in base.declared:
            raise ValueError(f"{base.notebook.name} has no 'seed' parameter; --seeds cannot be used")
        if any("seed" in g for g in grid):
            raise ValueError("use either --seeds or a grid axis on seed, not both")
        grid = [{**g, "seed": str(s)} for g in grid for s in range(args.seeds)]
    # validate every value, and that the runs they load exist, before starting any kernel
    runner.check_upstream([runner.plan(args.notebook, args.profile, list(args.param) + list(g.items())) for g in grid])
    sweep_id = time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
    tracking.experiment_id(base.name)  # create store and experiment once, before runs race for them
    print(f"sweep {sweep_id}: {len(grid)} runs of {base.notebook.name}, {args.jobs} at a time", flush=True)

    running: set[subprocess.Popen] = set()
    stopping = False
    lock = threading.Lock()  # no run starts once the sweep is stopping

    def one(g: dict):
        cmd = [sys.executable, "-m", "prmlab.cli", "run", str(base.notebook), "--profile", args.profile, "--quiet",
               "--tag", f"{tracking.TAG_PREFIX}sweep={sweep_id}"]
        for name, value in list(args.param) + list(g.items()):
            cmd += ["-p", name, str(value)]
        with lock:
            if stopping:
                return "SKIPPED"
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            running.add(proc)
        try:
            out, err = proc.communicate()
        finally:
            with lock:  # the stopping sweep iterates over running under the same lock
                running.discard(proc)
        run_id = next((ln.split(": ", 1)[1] for ln in out.splitlines() if ln.startswith("run_id: ")), "?")
        status = "FINISHED" if proc.returncode == 0 else "KILLED" if proc.returncode in (130, 143) else "FAILED"
        line = f"{status:8s} {run_id}  " + " ".join(f"{k}={v}" for k, v in g.items())
        print(line, flush=True)
        if status == "FAILED":
            print(err.strip()[-2000:], file=sys.stderr)
        return status

    pool = ThreadPoolExecutor(max_workers=args.jobs)
    try:
        with runner.signals_interrupt():
            statuses = list(pool.map(one, grid))
    except KeyboardInterrupt as e:
        # stop the runs in flight (each ends its MLflow run KILLED) and start no more
        with lock:
            stopping = True
            for proc in running:
                proc.terminate()
        pool.shutdown(wait=True, cancel_futures=True)
        print(f"sweep {sweep_id}: interrupted ({e or 'Ctrl-C'}); runs in flight were stopped and marked KILLED",
              file=sys.stderr)
        return 143 if isinstance(e, runner.Terminated) else 130
    pool.shutdown()
    failed = statuses.count("FAILED") + statuses.count("KILLED")
    print(f"sweep {sweep_id}: {len(grid) - failed} finished, {failed} failed (tag {tracking.TAG_PREFIX}sweep={sweep_id})")
    return 1 if failed else 0


def cmd_params(args) -> int:
    nb = notebooks.resolve_notebook(args.notebook)
    changed = runner.plan(nb, args.profile).parameters if args.profile else {}
    for name, p in studies.declared(nb).items():
        help_text = p.help + (f" (in {p.allowed})" if isinstance(p.allowed, notebooks.Range) else "")
        if name in changed and changed[name] != p.default:  # marked, with the default it replaces
            print(f"* {name:22s} = {changed[name]!r:34s} # [{args.profile}; default {p.default!r}] {help_text}")
        else:
            print(f"  {name:22s} = {p.default!r:34s} # {help_text}")
    return 0


def cmd_notebooks(args) -> int:
    """Each notebook: its purpose, its duration on the profile, and its latest run per profile."""
    store = tracking.local_store_path()
    look = store is None or store.exists()  # a fresh checkout has no store yet: nothing to look up
    for nb in notebooks.available_notebooks():
        print(f"{nb.stem:18s} {notebooks.purpose(nb)}")
        print(f"{'':18s} {args.profile} profile: {_duration(nb.stem, args.profile, look)}")
        latest = tracking.latest_runs(nb.stem) if look else {}
        for profile, run in sorted(latest.items()):
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(run.info.start_time / 1000))
            print(f"{'':18s} latest {profile} run: {run.info.status} {run.info.run_id}, started {when}")
        if not latest:
            print(f"{'':18s} no runs yet")
    return 0


def _duration(notebook: str, profile: str, look: bool) -> str:
    """The wall time of the latest finished run of the profile, else the tiny profile's table."""
    try:
        run = tracking.latest_run(notebook, profile) if look else None
    except tracking.NoRunError:
        run = None
    if run is not None:
        when = time.strftime("%Y-%m-%d", time.localtime(run.info.start_time / 1000))
        return f"{(run.info.end_time - run.info.start_time) / 60000:.1f} min measured (run {run.info.run_id[:8]}, {when})"
    minutes = notebooks.TINY_MINUTES.get(notebook) if profile == "tiny" else None
    return f"about {minutes} min on 2 CPU cores (estimate)" if minutes else "duration not measured yet"


def cmd_report(args) -> int:
    from .report import write_report

    path = write_report(profile=args.profile, out=args.out)
    print(f"report: {path}")
    return 0


def cmd_processbench(args) -> int:
    """A scorer on ProcessBench files, per subset, as ProcessBench's code scores it; one MLflow run."""
    from . import scorer_artifacts
    from .prm import processbench
    from .scorer_spec import check_scorers

    processbench.parse_rule(args.threshold)  # everything is checked before a model loads
    check_scorers(args.scorer, (*studies.prm_artifacts(), "implicit"), "scorer")
    subsets = processbench.read_subsets(args.data)
    scorers, sources = scorer_artifacts.load_step_scorers(args.scorer, None, [], None, args.profile, args.prm_run_id)
    run = tracking.Run(tracking.create_run("processbench", args.profile, 0, tags={
        "mlflow.source.name": "prmlab processbench", **{f"{tracking.TAG_PREFIX}scorer.{k}": v for k, v in sources.items()}}))
    try:
        run.log_params({"scorer": args.scorer, "data": ",".join(args.data), "threshold": args.threshold,
                        "choose_on": args.choose_on, "profile": args.profile})
        results = processbench.judge_scorers(scorers, subsets, args.threshold, args.choose_on)
        processbench.log(run, results)
    except BaseException as e:
        run.set_tags({f"{tracking.TAG_PREFIX}error": runner.short_error(e)})
        run.finish("KILLED" if isinstance(e, KeyboardInterrupt) else "FAILED")
        raise
    run.finish()
    print("\n".join(processbench.lines(results)))
    print(f"run_id: {run.id}\ntracking: {tracking.tracking_uri()}")
    return 0


def mlflow_ui_command(host: str, port: int) -> list[str]:
    """The MLflow server over the project's store (the same one the notebooks log to), as prmlab's app:
    MLflow's, opening in its "Model training" view (see prmlab.mlflow_app)."""
    from .mlflow_app import APP_NAME

    uri = tracking.tracking_uri()
    cmd = [sys.executable, "-m", "prmlab.mlflow_app", "server", "--app-name", APP_NAME, "--backend-store-uri", uri,
           "--host", host, "--port", str(port), "--workers", "1"]
    root = tracking.artifact_root(uri)
    if root:
        cmd += ["--default-artifact-root", root]
    return cmd


# The server's environment: without MLflow's GenAI job workers (eight processes prmlab never uses) and
# without telemetry.
MLFLOW_UI_ENV = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_DISABLE_TELEMETRY": "true"}


def mlflow_ui_url(host: str, port: int) -> str:
    """The experiments page (in the "Model training" view: the server's default, prmlab.mlflow_app)."""
    return f"http://{host}:{port}/#/experiments"


def cmd_ui(args) -> int:
    tracking.client().search_experiments()  # creates the local store if it does not exist yet
    print(f"MLflow UI over {tracking.tracking_uri()}\nopen {mlflow_ui_url(args.host, args.port)}", flush=True)
    return subprocess.call(mlflow_ui_command(args.host, args.port), env={**os.environ, **MLFLOW_UI_ENV})


def lab_command(host: str, port: int, root=None) -> list[str]:
    """JupyterLab over ``root`` (default: the project)."""
    cmd = [sys.executable, "-m", "jupyter", "lab", "--ip", host, "--port", str(port), "--no-browser",
           f"--ServerApp.root_dir={root or project_root()}"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    return cmd


def cmd_lab(args) -> int:
    print(f"JupyterLab on http://{args.host}:{args.port}/lab over {project_root()} "
          "(the address with its login token follows in JupyterLab's log)", flush=True)
    return subprocess.call(lab_command(args.host, args.port))


EXAMPLES = """examples:
  prmlab notebooks                                   what there is to run, and the latest runs
  prmlab run 00                                      the base policy on the tiny profile (about 5 minutes)
  prmlab run 00 --profile smoke -p seed 3            a quick check with another seed
  prmlab sweep 00 -g mistake_rate=0.2,0.3 --seeds 2  a grid of runs, compared in `prmlab ui`
  prmlab processbench qwen-prm:Qwen/Qwen2.5-Math-PRM-7B --data gsm8k.jsonl --data math.jsonl
"""


def _int_in(allowed: notebooks.Range):
    """An argparse type: an integer in ``allowed`` (argparse names the option and exits with 2)."""

    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise argparse.ArgumentTypeError(f"takes an integer; got {raw!r}") from None
        if value not in allowed:
            raise argparse.ArgumentTypeError(f"must lie in {allowed}; got {value}")
        return value

    return parse


PORT = _int_in(notebooks.Range(1, 65535))


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="prmlab", description=__doc__, epilog=EXAMPLES,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("run", help="execute a notebook through papermill as one MLflow run")
    _add_run_args(p)
    p.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE", help="extra MLflow tag")
    p.add_argument("-v", "--verbose", action="store_true", help="also stream every output of the notebook")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="no progress (by default: a line per cell and the notebook's progress bars, on stderr)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("sweep", help="run a parameter grid as separate runs of one experiment")
    _add_run_args(p)
    p.add_argument("-g", "--grid", action="append", default=[], metavar="NAME=V1,V2", help="a grid axis (repeatable)")
    p.add_argument("--seeds", type=_int_in(notebooks.AT_LEAST_0), default=0, help="repeat every grid point with seeds 0..N-1")
    p.add_argument("--jobs", type=_int_in(notebooks.AT_LEAST_1), default=1, help="runs at once (at least 1)")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("params", help="list a notebook's parameters with their defaults and help")
    p.add_argument("notebook", help="notebook number (00), name (00_policy_sft) or path")
    p.add_argument("--profile", default=None, help=f"show the values this profile sets ({' | '.join(PROFILES)})")
    p.set_defaults(func=cmd_params)

    p = sub.add_parser("notebooks", help="the notebooks: purpose, duration, latest run per profile")
    p.add_argument("--profile", default="tiny", choices=PROFILES, help="profile whose durations to show (default: tiny)")
    p.set_defaults(func=cmd_notebooks)

    p = sub.add_parser("report", help="write an HTML summary of the latest finished runs into reports/")
    p.add_argument("--profile", default="tiny", help="profile whose runs to summarise")
    p.add_argument("--out", default=None, help="output file (default reports/summary-<profile>.html)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("processbench", help="a PRM on ProcessBench files, scored per subset as its authors do",
                       description="Judge a step scorer on ProcessBench-format files (.jsonl or .json; the subset of "
                                   "a record is its id's prefix, gsm8k-0 -> gsm8k, else the file's name): per subset "
                                   "the error accuracy, the correct accuracy and their F1, and their mean F1, logged "
                                   "as one run of the MLflow experiment 'processbench'.")
    p.add_argument("scorer", help="CONVENTION:PATH (a published PRM: math-shepherd | qwen-prm | token-classification | "
                                  "prmlab, by hub name or local path) or a PRM of notebook 01 (prm, prm_oracle, ...) "
                                  "or implicit; comma-separated for several")
    p.add_argument("--data", action="append", required=True, metavar="FILE", help="a ProcessBench file (repeatable)")
    p.add_argument("--threshold", default="auto",
                   help="auto (default: argmax for two-class PRMs, else f1) | argmax (a step is right when P(good) > "
                        "0.5) | f1 (the threshold with the best F1 on --choose-on, applied to every subset) | a number")
    p.add_argument("--choose-on", default="gsm8k", help="the subset the f1 rule chooses its threshold on (default gsm8k)")
    p.add_argument("--profile", default="tiny", choices=PROFILES, help="profile of the 01 run a PRM name loads from")
    p.add_argument("--prm-run-id", default=None, help="the 01 run a PRM name loads from (default: the latest)")
    p.set_defaults(func=cmd_processbench)

    p = sub.add_parser("ui", help="MLflow UI over the project's tracking store",
                       description="Serve the MLflow UI over the store the notebooks log to ($MLFLOW_TRACKING_URI, "
                                   "else runs/mlflow.db); stop it with Ctrl-C.")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only; reach it from elsewhere "
                        "through an SSH tunnel rather than by listening on 0.0.0.0)")
    p.add_argument("--port", type=PORT, default=5000, help="port to listen on (default 5000)")
    p.set_defaults(func=cmd_ui)

    p = sub.add_parser("lab", help="JupyterLab on the project",
                       description="Start JupyterLab rooted at the project, without opening a browser; stop it "
                                   "with Ctrl-C.")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only; use an SSH tunnel from elsewhere)")
    p.add_argument("--port", type=PORT, default=8888, help="port to listen on (default 8888)")
    p.set_defaults(func=cmd_lab)
    return ap


# The commands that read or write the store: each first ends the runs whose process died without a word.
STORE_COMMANDS = ("run", "sweep", "notebooks", "report", "ui", "processbench")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        if args.command in STORE_COMMANDS:
            for run_id, reason in tracking.end_dead_runs():
                print(f"prmlab: run {run_id} was left RUNNING; ended KILLED: {reason}", file=sys.stderr)
        return args.func(args)
    except (ValueError, LookupError) as e:
        print(f"prmlab: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
