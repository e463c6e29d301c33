"""Job processes: started detached in their own process group, recognised again after a
restart (pid plus the process's start time, so a reused pid is never mistaken for the job), and
stopped as a group (SIGTERM, then SIGKILL), leaving no orphans."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

#: The server's secrets, kept from the jobs it starts: a job runs the user's model.py, and needs
#: none of them (the user's data tokens, BEARER_TOKEN and the like, pass).
SERVER_SECRETS = frozenset({
    "JUPYTER_TOKEN", "JUPYTER_PASSWORD", "JPY_API_TOKEN", "JPY_COOKIE_SECRET", "JUPYTERHUB_API_TOKEN",
    "JUPYTERHUB_CLIENT_SECRET", "JUPYTERHUB_CRYPT_KEY", "JUPYTERHUB_COOKIE_SECRET", "MLAAS4HEP_LAB_TOKEN",
})


def job_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment for a job process: the server's, less its secrets."""
    return {k: v for k, v in environ.items() if k not in SERVER_SECRETS}


def start_time(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (clock ticks since boot), or None if it is gone or a
    zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may contain spaces and parentheses: split after its last ')'
    fields = stat[stat.rindex(")") + 2:].split()
    if fields[0] == "Z":
        return None
    return fields[19]


def alive(pid: int | None, started: str | None) -> bool:
    """Whether the process ``pid`` that started at ``started`` still runs."""
    if not pid:
        return False
    current = start_time(pid)
    return current is not None and (started is None or current == started)


def launch(argv: Sequence[str], cwd: Path, log: Path, env: dict[str, str]) -> subprocess.Popen:
    """Start ``argv`` in a new session (its own process group, no controlling terminal), with
    stdout and stderr appended to ``log`` (created readable by its owner only)."""
    with os.fdopen(os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab") as out:
        return subprocess.Popen(list(argv), cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                env=env, start_new_session=True, close_fds=True)


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of a process group."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry))
    return members


def stop_group(pgid: int, grace: float = 5.0) -> None:
    """SIGTERM the process group, then SIGKILL what is left after ``grace`` seconds."""
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not group_members(pgid):
            return
        time.sleep(0.05)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while group_members(pgid) and time.monotonic() < deadline:
        time.sleep(0.05)


def how_it_ended(code: int | None, log: Path) -> str:
    """Why a job process left no result, as far as anyone can tell: its exit status ``code``
    (known to the manager that started it) and the last line of its ``log``."""
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = " — out of memory?" if -code == signal.SIGKILL else ""
        return f"the job process was killed by {name}{hint}"
    if code is not None:
        return f"the job process exited with code {code} without a result" + _last_line(log)
    # started by an earlier manager: its exit status went to that manager
    return "the job process ended without a result (killed, or out of memory?)" + _last_line(log)


def _last_line(log: Path, limit: int = 2000) -> str:
    try:
        text = log.read_text(errors="replace").strip()
    except OSError:
        return ""
    lines = [line for line in text.splitlines() if line.strip()]
    return f" (the log's last line: {lines[-1][:limit]})" if lines else ""
