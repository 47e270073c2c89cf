"""The data stores the chaos suite owns: a PostgreSQL cluster and Redis servers of its own, on
ports of their own, so that a fault can stop, kill and restart them without touching the
machine's shared servers (5432, 6379 are never stopped or even connected to).
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path


class InfraError(RuntimeError):
    """A data store would not start (the message says which and where its log is)."""


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def pick_port(preferred: int) -> int:
    """``preferred`` when nothing listens there, else the next free one above it."""
    for port in range(preferred, preferred + 200):
        if port_is_free(port):
            return port
    raise InfraError(f"no free port in {preferred}..{preferred + 199}")


def listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def wait_until(check, timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval)
    return bool(check())


def postgres_bindir() -> Path:
    """The newest PostgreSQL server installed (Debian layout), or the one on PATH."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
                   key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("pg_ctl")
    if on_path:
        return Path(on_path).parent
    raise InfraError("PostgreSQL server binaries (pg_ctl, initdb) are not installed: "
                     "apt-get install postgresql")


class Postgres:
    """A throwaway PostgreSQL cluster: ``initdb`` into ``directory``, trust authentication on
    127.0.0.1:``port``, one superuser ``portal``. Run as the ``postgres`` system user when this
    process is root (``initdb`` refuses root)."""

    user = "portal"

    def __init__(self, directory: Path, port: int, log: Path) -> None:
        self.directory = directory
        self.data = directory / "data"
        self.sockets = directory / "sockets"
        self.port = port
        self.log = log
        self.bindir = postgres_bindir()
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            if not shutil.which("runuser"):
                raise InfraError("running as root without runuser: cannot run initdb")
            self.as_user = ["runuser", "-u", "postgres", "--"]

    def _run(self, *args: str, check: bool = True, timeout: float = 120
             ) -> subprocess.CompletedProcess:
        return subprocess.run([*self.as_user, *args], check=check, timeout=timeout,
                              capture_output=True, text=True)

    def _own(self, path: Path) -> None:
        if self.as_user:
            shutil.chown(path, "postgres", "postgres")

    def init(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.sockets.mkdir(exist_ok=True)
        for path in (self.directory, self.sockets):
            self._own(path)
            path.chmod(0o755)
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.log.touch()
        self._own(self.log)
        result = self._run(str(self.bindir / "initdb"), "-D", str(self.data), "-U", self.user,
                           "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8", check=False)
        if result.returncode:
            raise InfraError(f"initdb failed: {result.stderr.strip() or result.stdout.strip()}")
        settings = {
            "listen_addresses": "'127.0.0.1'", "port": str(self.port),
            "unix_socket_directories": f"'{self.sockets}'", "max_connections": "300",
            # Durability is not under test: a stop is always clean (pg_ctl -m fast).
            "fsync": "off", "synchronous_commit": "off", "full_page_writes": "off",
            "shared_buffers": "64MB", "log_min_messages": "warning",
        }
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write("\n# chaos suite\n")
            for key, value in settings.items():
                conf.write(f"{key} = {value}\n")

    def start(self, timeout: float = 30) -> None:
        result = self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.log),
                           "-w", "-t", str(int(timeout)), "start", check=False,
                           timeout=timeout + 10)
        if result.returncode:
            raise InfraError(f"PostgreSQL would not start on {self.port}; see {self.log}")

    def stop(self, mode: str = "fast") -> None:
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop",
                  check=False, timeout=60)

    def running(self) -> bool:
        result = self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "status",
                           check=False, timeout=10)
        return result.returncode == 0

    def url(self, database: str, application_name: str = "") -> str:
        query = f"?application_name={application_name}" if application_name else ""
        return f"postgres://{self.user}@127.0.0.1:{self.port}/{database}{query}"

    def create_database(self, name: str) -> None:
        result = self._run(str(self.bindir / "createdb"), "-h", "127.0.0.1", "-p",
                           str(self.port), "-U", self.user, name, check=False)
        if result.returncode:
            raise InfraError(f"createdb {name} failed: {result.stderr.strip()}")

    def destroy(self) -> None:
        if self.data.exists() and self.running():
            self.stop("immediate")
        shutil.rmtree(self.directory, ignore_errors=True)


class Redis:
    """A Redis server of the suite's own, without persistence: a restart comes back empty, as
    a Redis without a volume does."""

    def __init__(self, name: str, port: int, log: Path) -> None:
        self.name, self.port, self.log = name, port, log
        self.proc: subprocess.Popen | None = None
        self.binary = shutil.which("redis-server")
        if not self.binary:
            raise InfraError("redis-server is not installed: apt-get install redis-server")

    def start(self, timeout: float = 10) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("a") as out:
            self.proc = subprocess.Popen(
                [self.binary, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
                 "--appendonly", "no", "--daemonize", "no", "--dir", str(self.log.parent)],
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        if not wait_until(lambda: listening(self.port), timeout):
            raise InfraError(f"Redis {self.name} would not start on {self.port}; see {self.log}")

    def kill(self) -> None:
        """SIGKILL: every connection drops at once and nothing is saved."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"
