"""A throw-away PostgreSQL server for the tests: temporary data folder, a free local port, stopped at the end.

``postgres_url()`` yields ``(url, reason)``: ``TEST_POSTGRES_URL`` when set (``.ci/run`` sets
it), else a server started here from the installed binaries (``initdb``/``pg_ctl``, Debian's
``postgresql`` package), else ``(None, why not)`` and the PostgreSQL tests are skipped with that
reason — unless ``TEST_POSTGRES_REQUIRED=1`` (CI), where a missing server fails them.
``initdb`` and ``postgres`` refuse to run as root: as root they run as the ``postgres`` user.
The server trades durability for speed (fsync off): it lives for one test run. (Not ``DISCOMFY_…``
names: the bot refuses unknown settings in its namespace.)

``python -m tests.pgserver`` starts one, prints ``TEST_POSTGRES_URL=<url>`` and the data
folder, and stops it when its standard input closes (what ``.ci/run`` uses).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["postgres_url", "find_binaries"]

FAST = "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"


def find_binaries() -> Path | None:
    """The folder holding ``initdb`` and ``pg_ctl`` (the newest Debian version), or None."""
    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb"):
        return Path(os.path.realpath(found)).parent
    folders = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda f: int(f.split("/")[-2]))
    return Path(folders[-1]) if folders and (Path(folders[-1]) / "pg_ctl").exists() else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _runner() -> dict:
    """subprocess options: as ``postgres`` when we are root (the server refuses root)."""
    if os.geteuid() != 0:
        return {}
    try:
        user = pwd.getpwnam("postgres")
    except KeyError:
        raise RuntimeError("running as root and there is no 'postgres' user to run the server as") from None
    return {"user": user.pw_uid, "group": user.pw_gid}


@contextlib.contextmanager
def started_server() -> Iterator[str]:
    """Start a server; yield its URL; stop it and remove its data."""
    binaries = find_binaries()
    if binaries is None:
        raise RuntimeError("PostgreSQL is not installed (no initdb/pg_ctl; Debian: apt-get install postgresql)")
    runner = _runner()
    folder = Path(tempfile.mkdtemp(prefix="discomfy-pg-"))
    if runner:
        os.chown(folder, runner["user"], runner["group"])
    data, port = folder / "data", _free_port()
    run = lambda *args: subprocess.run(args, check=True, capture_output=True, timeout=120, **runner)  # noqa: E731
    try:
        run(str(binaries / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
            "--locale=C", "--no-sync")
        run(str(binaries / "pg_ctl"), "-D", str(data), "-l", str(folder / "log"), "-w", "-t", "60", "-o",
            f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 {FAST}", "start")
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        shutil.rmtree(folder, ignore_errors=True)
        detail = (getattr(exc, "stderr", b"") or b"").decode(errors="replace").strip().splitlines()
        raise RuntimeError(f"PostgreSQL did not start ({detail[-1] if detail else exc})") from None
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"], capture_output=True,
                       timeout=60, **runner)
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def postgres_url() -> Iterator[tuple[str | None, str]]:
    """``(url, "")`` of a server for this test run, or ``(None, reason)``."""
    url = os.environ.get("TEST_POSTGRES_URL", "").strip()
    if url:
        yield url, ""
        return
    try:
        server = started_server()
        url = server.__enter__()
    except RuntimeError as exc:
        if os.environ.get("TEST_POSTGRES_REQUIRED") == "1":
            raise
        yield None, f"{exc}; or set TEST_POSTGRES_URL=postgresql://…"
        return
    try:
        yield url, ""
    finally:
        server.__exit__(None, None, None)


def main() -> int:
    with started_server() as url:
        print(f"TEST_POSTGRES_URL={url}", flush=True)
        sys.stdin.read()  # until the caller closes it
    return 0


if __name__ == "__main__":
    sys.exit(main())
