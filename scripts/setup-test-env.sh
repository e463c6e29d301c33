#!/usr/bin/env bash
# Set up everything the test suite needs on a fresh Debian machine (as root, or a user with sudo):
# Debian packages, then a virtual environment .venv (Debian's python3 refuses system-wide pip
# installs, PEP 668) holding the project with its test extras. Run the tests with
#   .venv/bin/python -m pytest
# Running it again only installs what changed. PYTHON=/path/to/python3 picks the interpreter.
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/debian-venv.sh

# Debian's XRootD server (remote-reading tests), Chromium (browser tests, driven by Playwright;
# "playwright install" cannot download its own browsers here), node and npm (they build the
# JupyterLab frontend during "pip install"), and python3-venv where the interpreter lacks venv.
install_missing setup xrootd=xrootd-server chromium=chromium node=nodejs npm=npm
make_venv setup
# the CPU build of PyTorch first (a plain "torch" would pull the CUDA wheels), then the project
echo "setup: installing torch (CPU) and the project with its test extras into .venv"
.venv/bin/python -m pip install --quiet "torch==2.13.0"
.venv/bin/python -m pip install --quiet -e ".[test,tf-cpu,torch]"
# the OIDC token issuer of the service tests (npm oauth2-mock-server, pinned by its lock file)
echo "setup: installing the test OIDC issuer into tests/oidc/node_modules"
npm ci --prefix tests/oidc --no-audit --no-fund --loglevel=error
# JupyterHub's proxy for the hub test (npm configurable-http-proxy, pinned by its lock file)
echo "setup: installing configurable-http-proxy into tests/hub/node_modules"
npm ci --prefix tests/hub --no-audit --no-fund --loglevel=error
echo "setup: done; run the tests with: .venv/bin/python -m pytest"
