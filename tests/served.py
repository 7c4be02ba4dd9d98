"""`agentops serve` as a real process for tests that need one: replicas, kill -9, restarts."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
from fakes import wait_until

AGENTOPS = str(Path(sys.executable).parent / "agentops")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServedProcess:
    """One `agentops serve` on its own home and a fixed port, so it can be killed and started again."""

    def __init__(self, home: Path, env: dict[str, str]):
        self.home, self.env, self.port = home, env | {"AGENTOPS_HOME": str(home)}, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self.log = home / "serve.log"

    def start(self) -> ServedProcess:
        self.home.mkdir(parents=True, exist_ok=True)
        with self.log.open("a") as log:
            self.process = subprocess.Popen(
                [AGENTOPS, "serve", "--port", str(self.port)], env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        wait_until(self._ready, timeout=120, what=f"the service on port {self.port} to be ready")
        return self

    def _ready(self) -> bool:
        assert self.process.poll() is None, f"the service exited: {self.log.read_text()[-2000:]}"
        try:
            return httpx.get(f"{self.url}/readyz", timeout=5).status_code == 200
        except httpx.TransportError:
            return False

    def kill9(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)
