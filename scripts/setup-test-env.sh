#!/usr/bin/env bash
# Set up everything the test suite needs on a fresh Debian machine (run as root or with sudo):
# Debian packages, then the project with its test extras.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi

# Debian's XRootD server (remote-reading tests) and Chromium (browser tests, driven by Playwright;
# "playwright install" cannot download its own browsers here)
missing=""
command -v xrootd >/dev/null 2>&1 || missing="$missing xrootd-server"
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
# node and npm build the JupyterLab frontend during "pip install"
command -v node >/dev/null 2>&1 || missing="$missing nodejs npm"
if [ -n "$missing" ]; then
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
fi

python3 -m pip install --quiet --upgrade pip
# the CPU build of PyTorch first (a plain "torch" would pull the CUDA wheels), then the project
python3 -m pip install --quiet "torch==2.13.0"
python3 -m pip install --quiet -e ".[test,tf-cpu,torch]"
