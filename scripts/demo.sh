#!/usr/bin/env bash
# Set up and open the demo on a fresh Debian machine: python3-venv and Node.js from Debian where
# missing (Node.js builds the JupyterLab frontend during the install), the project in a virtual
# environment .venv, then JupyterLab on the demo notebook. Extra arguments go to
# "mlaas4hep-lab demo" (e.g. --no-browser, --port 8888).
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/debian-venv.sh
install_missing demo node=nodejs npm=npm
make_venv demo
echo "demo: installing the project with Keras (TensorFlow CPU) into .venv"
.venv/bin/python -m pip install --quiet -e ".[tf-cpu]"
exec .venv/bin/mlaas4hep-lab demo "$@"
