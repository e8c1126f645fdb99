"""Real servers of a test's own, to stop, kill, pause and start again: a redis-server and a PostgreSQL cluster."""

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import asyncpg


class RedisProcess:
    """A real redis-server of the test's own, on its own port, keeping nothing on disk."""

    def __init__(self, port: int, directory: str | None = None) -> None:
        self.port, self.directory = port, directory or tempfile.mkdtemp(prefix="mall-redis-")
        self.url = f"redis://127.0.0.1:{port}/0"

    def start(self) -> None:
        subprocess.run(
            [shutil.which("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1", "--daemonize", "yes"]
            + ["--save", "", "--appendonly", "no", "--dir", self.directory, "--pidfile", self.pidfile],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        for _ in range(100):
            if self._answers():
                return
            time.sleep(0.02)
        raise RuntimeError("redis-server did not start")

    @property
    def pidfile(self) -> str:
        return str(Path(self.directory) / "redis.pid")

    def stop(self) -> None:
        subprocess.run(
            [shutil.which("redis-cli"), "-p", str(self.port), "shutdown", "nosave"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def kill(self) -> None:
        """SIGKILL, as a crash or the OOM killer ends it: whatever it held is gone."""
        pid = int(Path(self.pidfile).read_text())
        os.kill(pid, signal.SIGKILL)
        for _ in range(100):
            if not self._answers():
                Path(self.pidfile).unlink(missing_ok=True)
                return
            time.sleep(0.02)
        raise RuntimeError("redis-server outlived SIGKILL")

    def _answers(self) -> bool:
        done = subprocess.run(
            [shutil.which("redis-cli"), "-p", str(self.port), "ping"], capture_output=True, text=True, check=False
        )
        return done.stdout.strip() == "PONG"


def _pg_bin() -> Path:
    if found := shutil.which("initdb"):
        return Path(found).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name))
    if not versions:
        raise RuntimeError("PostgreSQL's binaries are missing: scripts/test installs them")
    return versions[-1]


class PostgresProcess:
    """A PostgreSQL cluster of the test's own (trust auth, loopback), whose processes can be paused (SIGSTOP)."""

    def __init__(self, port: int) -> None:
        self.port, self.bin = port, _pg_bin()
        self.directory = Path(tempfile.mkdtemp(prefix="mall-pg-"))
        self.data = self.directory / "data"
        self.url = f"postgresql://postgres@127.0.0.1:{port}/mall"

    def _as_owner(self, *command: str) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else list(command)

    def start(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.directory, "postgres", "postgres")
        if not self.data.exists():
            subprocess.run(
                self._as_owner(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust")
                + ["-E", "UTF8", "--locale=C.UTF-8"],
                check=True,
                stdout=subprocess.DEVNULL,
            )
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off"
        subprocess.run(
            self._as_owner(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.directory / "log"), "-w")
            + ["-o", options, "start"],
            check=True,
            stdout=subprocess.DEVNULL,
        )

    async def create_database(self) -> None:
        connection = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{self.port}/postgres")
        try:
            await connection.execute("CREATE DATABASE mall")
        finally:
            await connection.close()

    def _pids(self) -> list[int]:
        postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        children = subprocess.run(["pgrep", "-P", str(postmaster)], capture_output=True, text=True).stdout.split()
        return [postmaster, *map(int, children)]

    def pause(self) -> None:
        """SIGSTOP every process of the cluster: connections stay open and nothing answers."""
        for pid in self._pids():
            os.kill(pid, signal.SIGSTOP)

    def resume(self) -> None:
        for pid in self._pids():
            os.kill(pid, signal.SIGCONT)

    def stop(self) -> None:
        self.resume()
        subprocess.run(
            self._as_owner(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )
        shutil.rmtree(self.directory, ignore_errors=True)
