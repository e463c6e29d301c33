"""Routes for the JupyterLab frontend only, outside the jobs API (the remote service has no use
for them, so they are not in the API document): ``<base_url>/mlaas4hep/lab/...``.

``POST lab/demo`` puts the demo notebook in the user's root folder, as
``mlaas4hep-demo/demo.ipynb``, and answers its path: the launcher's "MLaaS4HEP demo" card then
opens it. An existing copy is never overwritten (the user may have edited it).
"""

from __future__ import annotations

from pathlib import Path

from jupyter_core.utils import ensure_async
from jupyter_server.auth import authorized
from tornado import web

from .handlers import BaseHandler

LAB = "mlaas4hep/lab"
DEMO_FOLDER = "mlaas4hep-demo"
DEMO_NAME = "demo.ipynb"
#: where the wheel puts examples/demo.ipynb (hatch force-include)
PACKAGED_DEMO = Path(__file__).parent / "examples" / DEMO_NAME
#: the repository's copy, for an editable install that has no packaged one
REPO_DEMO = Path(__file__).parents[1] / "examples" / DEMO_NAME


def demo_notebook_candidates(configured: str = "") -> list[Path]:
    """Where the demo notebook may be: ``configured`` (``MLaaS4HEPLab.demo_notebook``), else the
    packaged copy, then the repository's (an editable install has no packaged one)."""
    candidates = [Path(configured)] if configured else []
    if not configured or Path(configured) == PACKAGED_DEMO:
        candidates += [PACKAGED_DEMO, REPO_DEMO]
    return list(dict.fromkeys(candidates))


def find_demo_notebook(configured: str) -> Path:
    """The demo notebook to copy; 404 when there is none."""
    candidates = demo_notebook_candidates(configured)
    for path in candidates:
        if path.is_file():
            return path
    looked = ", ".join(str(p) for p in candidates)
    raise web.HTTPError(404, f"the MLaaS4HEP demo notebook is not installed (looked for {looked}); "
                             "set MLaaS4HEPLab.demo_notebook to a notebook file")


class DemoNotebookHandler(BaseHandler):
    """Copy the demo notebook to ``<root>/mlaas4hep-demo/demo.ipynb`` unless it is there; answer
    ``{"path": "mlaas4hep-demo/demo.ipynb", "created": bool}``."""

    @web.authenticated
    @authorized
    async def post(self) -> None:
        source = find_demo_notebook(self.settings.get("mlaas4hep_demo_notebook", ""))
        contents = self.contents_manager
        path = f"{DEMO_FOLDER}/{DEMO_NAME}"
        if await ensure_async(contents.file_exists(path)):
            self.send({"path": path, "created": False})
            return
        if not await ensure_async(contents.dir_exists(DEMO_FOLDER)):
            if await ensure_async(contents.file_exists(DEMO_FOLDER)):
                raise web.HTTPError(409, f"{DEMO_FOLDER!r} in your home folder is a file; move it to get the demo")
            await ensure_async(contents.save({"type": "directory"}, DEMO_FOLDER))
        try:
            text = source.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise web.HTTPError(500, f"cannot read the demo notebook {source}: {err}") from None
        # saved as text, byte for byte: no re-validation or re-formatting of the notebook
        await ensure_async(contents.save({"type": "file", "format": "text", "content": text}, path))
        self.log.info("MLaaS4HEP demo notebook copied from %s to %s", source, path)
        self.send({"path": path, "created": True}, 201)


#: (path under <base_url>/mlaas4hep/lab, handler)
LAB_ROUTES: list[tuple[str, type[BaseHandler]]] = [
    ("/demo", DemoNotebookHandler),
]


def _remote_routes() -> list[tuple[str, type[BaseHandler]]]:
    from .remote_handlers import REMOTE_ROUTES

    return REMOTE_ROUTES


LAB_ROUTES += _remote_routes()
