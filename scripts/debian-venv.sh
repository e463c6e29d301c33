# The first steps of demo.sh and setup-test-env.sh, sourced by both from the repository root (not
# run by itself): Debian packages for the commands a script needs, and the virtual environment
# .venv. PYTHON=/path/to/python3 picks the interpreter; not root means sudo.

SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
PY="${PYTHON:-python3}"

# install_missing LABEL COMMAND=PACKAGE...: install the Debian package of every command not on
# PATH, and python3-venv where the interpreter lacks venv; LABEL starts the line it prints.
install_missing() {
    local label="$1" pair missing=""
    shift
    for pair in "$@"; do
        command -v "${pair%%=*}" >/dev/null 2>&1 || missing="$missing ${pair#*=}"
    done
    "$PY" -c "import ensurepip, venv" >/dev/null 2>&1 || missing="$missing python3-venv"
    if [ -n "$missing" ]; then
        echo "$label: installing Debian packages:$missing"
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
    fi
}

# make_venv LABEL: create .venv with the interpreter where there is none; bring its pip up to date.
make_venv() {
    if [ ! -x .venv/bin/python ]; then
        echo "$1: creating .venv with $("$PY" --version 2>&1)"
        "$PY" -m venv .venv
    fi
    export PIP_DISABLE_PIP_VERSION_CHECK=1
    .venv/bin/python -m pip install --quiet --upgrade pip
}
