"""``mlaas4hep-lab``: JupyterLab with MLaaS4HEP.

``mlaas4hep-lab demo`` copies the demo notebook to ``./mlaas4hep-demo/demo.ipynb`` (an existing
copy is kept: you may have edited it) and opens JupyterLab on it. The engine's terminal demo is
``mlaas4hep demo``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from .lab_handlers import DEMO_NAME, demo_notebook_candidates


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlaas4hep-lab", description="JupyterLab with MLaaS4HEP.")
    verbs = parser.add_subparsers(dest="verb", metavar="<verb>", required=True)
    p = verbs.add_parser("demo", help="open JupyterLab on the MLaaS4HEP demo notebook",
                         description="Copies the demo notebook to DIR/demo.ipynb (kept if it exists) and starts "
                                     "JupyterLab on it. Extra arguments go to 'jupyter lab'.")
    p.add_argument("--dir", default="mlaas4hep-demo", help="folder for the notebook and its data "
                                                          "(default: mlaas4hep-demo)")
    p.add_argument("--port", type=int, help="JupyterLab's port (default: JupyterLab's choice)")
    p.add_argument("--no-browser", action="store_true",
                   help="do not open a browser (print the notebook's URL, /lab/tree/demo.ipynb?token=..., only)")
    return parser


def demo(folder: Path, port: int | None, no_browser: bool, extra: Sequence[str]) -> int:
    source = next((p for p in demo_notebook_candidates() if p.is_file()), None)
    if source is None:
        print("mlaas4hep-lab: error: the demo notebook is not installed (looked for "
              + ", ".join(map(str, demo_notebook_candidates())) + ")", file=sys.stderr)
        return 2
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        print(f"mlaas4hep-lab: error: {folder}: cannot create the folder: {err.strerror or err}", file=sys.stderr)
        return 2
    notebook = folder / DEMO_NAME
    if not notebook.exists():
        shutil.copyfile(source, notebook)
    argv = [sys.executable, "-m", "jupyter", "lab", f"--ServerApp.root_dir={folder.resolve()}", DEMO_NAME]
    if not any(arg.startswith(("--LabApp.default_url", "--ServerApp.default_url")) for arg in extra):
        # the URL JupyterLab prints (and opens) is the notebook's own: .../lab/tree/demo.ipynb?token=...
        argv.append(f"--LabApp.default_url=/lab/tree/{DEMO_NAME}")
    if port:
        argv.append(f"--port={port}")
    if no_browser:
        argv.append("--no-browser")
    if os.geteuid() == 0:
        argv.append("--allow-root")  # JupyterLab refuses root otherwise
    argv += list(extra)
    print(f"opening JupyterLab on {notebook} (Ctrl-C twice to stop)"
          + ("; open the .../lab/tree/demo.ipynb?token=... URL it prints" if no_browser else ""), flush=True)
    os.chdir(folder)
    os.execv(sys.executable, argv)  # becomes JupyterLab
    return 0  # not reached


def main(argv: Sequence[str] | None = None) -> int:
    args, extra = build_parser().parse_known_args(argv)
    return demo(Path(args.dir), args.port, args.no_browser, extra)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
