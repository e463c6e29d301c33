#!/usr/bin/env bash
# Set up everything the test suite needs on a fresh Debian machine (run as root or with sudo):
# Debian's XRootD server (remote-reading tests) and the project with its test extras.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi

if ! command -v xrootd >/dev/null 2>&1; then
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq xrootd-server >/dev/null
fi

python3 -m pip install --quiet --upgrade pip
# the CPU build of PyTorch first (a plain "torch" would pull the CUDA wheels), then the project
python3 -m pip install --quiet "torch==2.13.0"
python3 -m pip install --quiet -e ".[test,tf-cpu,torch]"
