"""``mlaas4hep serve``: check the settings, then run the app under uvicorn."""

from __future__ import annotations

import argparse

from ..errors import ConfigError
from .config import load_config


def serve(args: argparse.Namespace) -> int:
    config = load_config(args)
    try:
        import uvicorn

        from .app import create_app
    except ImportError as err:
        raise ConfigError(f"the service needs {err.name}: pip install 'mlaas4hep-lab[service]'") from None
    app = create_app(config)
    # uvicorn must not replace the peer address by X-Forwarded-For: the peer address is what
    # decides whether a proxy's X-Forwarded-User is believed (--trusted-proxies)
    uvicorn.run(app, host=config.host, port=config.port, log_level=config.log_level, proxy_headers=False,
                access_log=config.access_log)
    return 0
