#!/usr/bin/env bash
# Set up and open the demo on a fresh Debian machine: python3-venv and Node.js from Debian where
# missing (Node.js builds the JupyterLab frontend during the install), the project in a virtual
# environment .venv, then JupyterLab on the demo notebook. Extra arguments go to
# "mlaas4hep-lab demo" (e.g. --no-browser, --port 8888).
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
PY="${PYTHON:-python3}"

missing=""
command -v node >/dev/null 2>&1 || missing="$missing nodejs"
command -v npm >/dev/null 2>&1 || missing="$missing npm"
"$PY" -c "import ensurepip, venv" >/dev/null 2>&1 || missing="$missing python3-venv"
if [ -n "$missing" ]; then
    echo "demo: installing Debian packages:$missing"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
fi
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
export PIP_DISABLE_PIP_VERSION_CHECK=1
.venv/bin/python -m pip install --quiet --upgrade pip
echo "demo: installing the project with Keras (TensorFlow CPU) into .venv"
.venv/bin/python -m pip install --quiet -e ".[tf-cpu]"
exec .venv/bin/mlaas4hep-lab demo "$@"
