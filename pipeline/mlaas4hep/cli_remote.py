"""``mlaas4hep submit --remote URL`` and ``mlaas4hep jobs --remote URL``: jobs on a remote
MLaaS4HEP service from the command line, with the user's own token (``--token``, else
``MLAAS4HEP_TOKEN``, a token file, or JupyterHub's auth_state; see ``mlaas4hep_lab.hub``)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from .errors import ConfigError


def add_parsers(verbs: Any) -> None:
    def remote(p: argparse.ArgumentParser) -> None:
        p.add_argument("--remote", required=True, metavar="NAME|URL",
                       help="the service: its URL (https://host; /api/v1 is added) or a name in MLAAS4HEP_REMOTES")
        p.add_argument("--token", help="the bearer token (default: MLAAS4HEP_TOKEN, MLAAS4HEP_TOKEN_FILE, "
                                       "BEARER_TOKEN_FILE, $XDG_RUNTIME_DIR/bt_u$UID, or JupyterHub's auth_state)")

    p = verbs.add_parser("submit", help="send a training job to a remote MLaaS4HEP service",
                         description="Local input files (and model.py) are uploaded to the service first; root:// "
                                     "and https:// names, and names of files already there, are sent as they are.")
    p.add_argument("--files", required=True, help="files.txt or a comma list of ROOT files")
    p.add_argument("--labels", required=True, help="labels.txt or a comma list, one label per file")
    p.add_argument("--model", required=True, help="model.py")
    p.add_argument("--params", help="params.json")
    p.add_argument("--preproc", help="preproc.json")
    p.add_argument("--name", help="a name for the job (default: the model file's name)")
    p.add_argument("--wait", action="store_true", help="wait until the job ends and print its test metrics")
    remote(p)
    p.set_defaults(run=cmd_submit)

    p = verbs.add_parser("jobs", help="list your jobs on a remote MLaaS4HEP service")
    remote(p)
    p.set_defaults(run=cmd_jobs)


def _client(args: argparse.Namespace):
    from .client import remote_client

    return remote_client(args.remote, args.token)


def _json_file(path: str, what: str) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"{what} file not found", where=path) from None
    except (OSError, ValueError) as err:
        raise ConfigError(f"cannot read the {what} file: {err}", where=path) from None


def cmd_submit(args: argparse.Namespace) -> int:
    from .config import load_list, load_params, load_preproc

    if not os.path.isfile(args.model):
        raise ConfigError("model file not found", where=args.model)
    request: dict[str, Any] = {"files": [e.local_path() for e in load_list(args.files, "files")],
                               "labels": [e.value for e in load_list(args.labels, "labels")],
                               "name": args.name or Path(args.model).stem, "model_path": args.model}
    if args.params:
        load_params(args.params)  # checked here, naming the file and key
        request["params"] = _json_file(args.params, "params")
    if args.preproc:
        load_preproc(args.preproc)
        request["preproc"] = _json_file(args.preproc, "preproc")
    client = _client(args)
    job = client.submit(request)
    print(f"job {job.id} ({job.name}): {job.status} on {client.api}")
    if not args.wait:
        return 0
    info = client.follow(job.id)
    print(f"job {info.id} ({info.name}): {info.status}")
    for key, value in info.metrics.items():
        if key.startswith("test_"):
            print(f"  {key[5:]}: {value:.4f}" if isinstance(value, float) else f"  {key[5:]}: {value}")
    if info.error:
        print(f"error: {info.error}", file=sys.stderr)
    return 0 if info.status == "succeeded" else 1


def cmd_jobs(args: argparse.Namespace) -> int:
    from .console import human_time, table

    jobs = _client(args).jobs()
    if not jobs:
        print("no jobs")
        return 0
    now = time.time()
    print(table(["id", "name", "status", "created"],
                [[j.id, j.name, j.status, human_time(now - j.created) + " ago"] for j in jobs]))
    return 0
