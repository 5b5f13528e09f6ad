"""Processes and measures of ``benchmarks/abuse.py``: gunicorn and Celery workers on loopback, HTTP calls as fly's
proxy forwards them, and the memory figures of ``/proc`` (RSS, its peak, PSS)."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def worker_pids(master: int) -> list[int]:
    """The pids of the children of process ``master`` (gunicorn's workers)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == master:
                found.append(int(entry.name))
    return sorted(found)


def pss_mb(pid: int) -> float:
    """The proportional set size of ``pid`` in MB (shared pages divided among their sharers), 0 when gone."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def memory_mb(pid: int, field: str) -> float:
    """``VmRSS`` (now) or ``VmHWM`` (peak) of ``pid`` in MB, 0 when it has gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class Server:
    """gunicorn with the production settings on a free loopback port, its output in a log file."""

    def __init__(self, env: dict[str, str], workers: int, threads: int, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, "-m", "gunicorn", "barter_site.wsgi", "--bind", f"127.0.0.1:{self.port}"]
        command += ["--workers", str(workers), "--threads", str(threads)]
        self.log = log
        with log.open("w") as out:
            self.process = subprocess.Popen(  # noqa: S603 - our own command line
                command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
            )

    def wait_ready(self, seconds: float = 90) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(
                    f"gunicorn exited ({self.process.returncode}):\n{self.log.read_text()[-3000:]}"
                )
            try:
                urllib.request.urlopen(f"{self.url}/healthz", timeout=2).close()  # noqa: S310 - loopback
                return
            except (urllib.error.URLError, OSError):
                time.sleep(0.3)
        raise SystemExit(f"gunicorn did not answer /healthz within {seconds:.0f} s")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=35)
            except subprocess.TimeoutExpired:
                self.process.kill()


def call(
    url: str, *, token: str = "", body: bytes | None = None, timeout: float = 300
) -> tuple[int, dict[str, str], float, bytes]:
    """One HTTP request as fly's proxy forwards it (``X-Forwarded-Proto: https``);
    ``(status, headers, seconds, body)``."""
    headers = {"X-Forwarded-Proto": "https"}
    if token:
        headers["Authorization"] = f"Token {token}"
    if body is not None:
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=body, headers=headers, method="POST" if body else "GET")  # noqa: S310
    began = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - loopback
            content = response.read()
            return response.status, dict(response.headers), time.perf_counter() - began, content
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), time.perf_counter() - began, exc.read()
    except (urllib.error.URLError, OSError):
        return 0, {}, time.perf_counter() - began, b""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else float("nan")


def celery_worker_start(
    env: dict[str, str], queue: str, concurrency: int, log: Path
) -> subprocess.Popen[bytes]:
    """A Celery worker (prefork) consuming ``queue``, its output in ``log``."""
    command = [sys.executable, "-m", "celery", "-A", "barter_site", "worker", "-Q", queue]
    command += ["--concurrency", str(concurrency), "--loglevel", "WARNING", "-n", f"{queue}@%h"]
    with log.open("w") as out:
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)  # noqa: S603
