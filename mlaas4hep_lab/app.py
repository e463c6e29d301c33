"""The Jupyter server extension: a JobManager behind the jobs API, configured with traitlets.

``jupyter lab --MLaaS4HEPLab.concurrency=2 --MLaaS4HEPLab.job_root=/data/jobs`` or the same in a
``jupyter_server_config.py`` (``c.MLaaS4HEPLab.concurrency = 2``).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sys

from jupyter_server.extension.application import ExtensionApp
from jupyter_server.utils import url_path_join
from traitlets import Dict, Float, Integer, List, Type, Unicode, default

from mlaas4hep.client import default_root
from mlaas4hep.errors import MLaaS4HEPError
from mlaas4hep.jobs import JobManager, KernelInfo
from mlaas4hep.jobs.executor import make_executor
from mlaas4hep.jobs.inputs import MODEL_SIZE_LIMIT

from .handlers import API, MAX_BODY_SIZE, ROUTES
from .lab_handlers import LAB, LAB_ROUTES, PACKAGED_DEMO


class MLaaS4HEPLab(ExtensionApp):
    name = "mlaas4hep_lab"
    description = "MLaaS4HEP training jobs for JupyterLab"

    job_root = Unicode("", config=True,
                       help="Folder of the job database and job folders (default: $MLAAS4HEP_JOB_ROOT or "
                            "~/.local/share/mlaas4hep, shared with kernels that run without a server).")
    concurrency = Integer(1, config=True, help="Jobs that may run at once; the rest wait in the queue.")
    manager_class = Type(JobManager, klass=JobManager, config=True,
                         help="The JobManager class (swap in a subclass to change how jobs are run).")
    model_dirs = List(Unicode(), config=True,
                      help="Folders a job's model_path may name a file in (default: the server's root_dir only). "
                           "Paths elsewhere are refused.")
    max_model_size = Integer(MODEL_SIZE_LIMIT, config=True,
                             help="The largest model file (model_path) a job may name, in bytes.")
    max_body_size = Integer(MAX_BODY_SIZE, config=True,
                            help="The largest request body the jobs API takes, in bytes (413 beyond).")
    default_kernel = Unicode("python3", config=True, help="Kernelspec whose Python runs jobs that name none.")
    dask_address = Unicode("", config=True,
                           help="Run jobs on the workers of this Dask scheduler (tcp://host:8786, or 'local') "
                                "instead of as processes of this machine; job_root must be a folder the workers "
                                "share (default: $MLAAS4HEP_DASK, else this machine).")
    dask_resources = Dict(value_trait=Float(), config=True,
                          help="Resource tags a job needs on a Dask worker, e.g. {'GPU': 1}.")
    remotes = Dict(config=True,
                   help="Remote MLaaS4HEP services (mlaas4hep serve) jobs may go to: name -> URL, or name -> "
                        "{'url': URL, 'token': TOKEN}. Merged with MLAAS4HEP_REMOTES (which wins on a name); kernels "
                        "see the union as MLAAS4HEP_REMOTES. Requests carry the user's own token "
                        "(mlaas4hep_lab.hub.access_token) unless an entry has one.")
    demo_notebook = Unicode(config=True,
                            help="The notebook that the launcher's 'MLaaS4HEP demo' copies to mlaas4hep-demo/demo.ipynb "
                                 "(default: the packaged demo; in an editable install, the repository's "
                                 "examples/demo.ipynb).")

    @default("demo_notebook")
    def _default_demo_notebook(self) -> str:
        return str(PACKAGED_DEMO)

    def initialize_settings(self) -> None:
        owner = os.environ.get("JUPYTERHUB_USER") or _login()
        root = self.job_root or str(default_root())
        self.manager = self.manager_class(root, concurrency=self.concurrency, owner=owner,
                                          base_dir=self.serverapp.root_dir, kernels=self.kernels,
                                          model_dirs=[self.serverapp.root_dir, *self.model_dirs],
                                          model_size_limit=self.max_model_size,
                                          executor=make_executor(self.dask_address or None, self.dask_resources or None))
        self._merge_remotes()
        secret = secrets.token_urlsafe(32)
        # kernels started by this server inherit these: that is how they reach their server
        os.environ["MLAAS4HEP_LAB_URL"] = self.kernel_url()
        os.environ["MLAAS4HEP_LAB_TOKEN"] = secret
        self.settings.update(mlaas4hep_manager=self.manager, mlaas4hep_secret=secret, mlaas4hep_owner=owner,
                             mlaas4hep_kernels=self.kernels, mlaas4hep_default_kernel=self.default_kernel,
                             mlaas4hep_demo_notebook=self.demo_notebook, mlaas4hep_max_body_size=self.max_body_size)
        self.log.info("MLaaS4HEP jobs in %s (concurrency %d)", self.manager.root, self.concurrency)

    def _merge_remotes(self) -> None:
        """c.MLaaS4HEPLab.remotes and MLAAS4HEP_REMOTES as one MLAAS4HEP_REMOTES, for this server's
        routes and its kernels; a malformed entry is logged with what is wrong and left out."""
        from mlaas4hep.client import remotes

        merged: dict = {}
        for origin, text in (("c.MLaaS4HEPLab.remotes", json.dumps(dict(self.remotes))),
                             ("MLAAS4HEP_REMOTES", os.environ.get("MLAAS4HEP_REMOTES", ""))):
            try:
                merged.update(remotes(text))
            except MLaaS4HEPError as err:
                self.log.error("MLaaS4HEP: %s: %s; its remote services are left out", origin, err.message)
        os.environ["MLAAS4HEP_REMOTES"] = json.dumps(merged)
        if merged:
            self.log.info("MLaaS4HEP remote services: %s", ", ".join(f"{k} ({v['url']})" for k, v in merged.items()))

    def kernel_url(self) -> str:
        """This server's URL as its kernels (on the same machine) should use it: a loopback IP
        rather than 'localhost', which may resolve to an address the server does not listen on."""
        app = self.serverapp
        if getattr(app, "sock", ""):
            return app.connection_url
        scheme = "https" if app.certfile else "http"
        host = {"": "127.0.0.1", "localhost": "127.0.0.1", "0.0.0.0": "127.0.0.1", "*": "127.0.0.1",
                "::": "[::1]", "::1": "[::1]"}.get(app.ip, app.ip)
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"{scheme}://{host}:{app.port}{app.base_url}"

    def initialize_handlers(self) -> None:
        # ExtensionApp puts the server's base_url in front of these patterns
        self.handlers.extend((url_path_join("/", API) + path, handler) for path, handler in ROUTES)
        # the JupyterLab frontend's own routes: not part of the jobs API (nor of its document)
        self.handlers.extend((url_path_join("/", LAB) + path, handler) for path, handler in LAB_ROUTES)

    def kernels(self) -> dict[str, KernelInfo]:
        """Python kernelspecs known to this server, with their interpreters."""
        found: dict[str, KernelInfo] = {}
        for name, entry in self.serverapp.kernel_spec_manager.get_all_specs().items():
            spec = entry.get("spec", {})
            argv = spec.get("argv") or []
            if spec.get("language", "").lower() != "python" or not argv:
                continue
            program = argv[0]
            python = sys.executable if program in ("python", "python3", "{python}") else (
                program if os.path.isabs(program) else shutil.which(program))
            if python:
                found[name] = KernelInfo(name=name, display_name=spec.get("display_name", name), python=python)
        found.setdefault("python3", KernelInfo(name="python3", display_name="Python 3 (server)", python=sys.executable))
        return found

    async def stop_extension(self) -> None:
        self.manager.close()  # running jobs go on; the next server re-attaches to them


def _login() -> str:
    import getpass

    return getpass.getuser()
