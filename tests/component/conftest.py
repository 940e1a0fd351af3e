"""Component tier: the I/O adapters and service pieces against a REAL redis-server.

One redis-server per session, on a unix socket only (`--port 0`: no TCP port to collide with anyone's),
no persistence, stopped by its PID at the end. Every test gets a fresh client on an empty database.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if shutil.which("redis-server") is None:
        # never silently skipped: a machine without redis-server fails loudly
        raise pytest.UsageError("component tests need redis-server: run `make setup`")


@pytest.fixture(scope="session")
def redis_socket() -> Iterator[str]:
    """The unix socket of a redis-server started for this session."""
    run_dir = Path(tempfile.mkdtemp(prefix="xfer-redis-"))  # short: a socket path must fit a sun_path
    sock = run_dir / "redis.sock"
    proc = subprocess.Popen(
        ["redis-server", "--port", "0", "--unixsocket", str(sock), "--unixsocketperm", "700",
         "--save", "", "--appendonly", "no", "--dir", str(run_dir), "--logfile", str(run_dir / "redis.log")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not _answers(sock):
            if proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {proc.returncode}: "
                                   f"{(run_dir / 'redis.log').read_text(errors='replace')[-2000:]}")
            if time.monotonic() >= deadline:
                raise RuntimeError(f"redis-server did not answer on {sock} within 10 s")
            time.sleep(0.02)
        yield str(sock)
    finally:
        proc.terminate()  # by its PID: only the process this fixture started
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(run_dir, ignore_errors=True)


def _answers(sock: Path) -> bool:
    import redis

    if not sock.exists():
        return False
    try:
        return bool(redis.Redis(unix_socket_path=str(sock), socket_timeout=1).ping())
    except redis.ConnectionError:
        return False


@pytest.fixture
async def redis(redis_socket: str) -> AsyncIterator[Redis]:
    """A client on an empty database (bytes replies, as the controller uses it)."""
    client = Redis(unix_socket_path=redis_socket)
    await client.flushall()
    try:
        yield client
    finally:
        await client.flushall()
        await client.aclose()


async def eventually(check: Callable[[], Awaitable[object]], *, within_s: float = 5.0, what: str) -> object:
    """Await `check()` until it returns something truthy, and return that; fail after `within_s` seconds."""
    deadline = time.monotonic() + within_s
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {within_s} s waiting for {what}")
        await asyncio.sleep(0.01)
