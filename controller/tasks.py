"""Background tasks that stop cleanly."""

from __future__ import annotations

import asyncio
import contextlib


async def cancel_and_wait(task: asyncio.Task[None] | None) -> None:
    """Cancel a background task and wait until it has really stopped; safe with None or twice."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


class BackgroundLoop:
    """A service part whose `run()` loops until cancelled: `start()` it, `stop()` it (safe twice)."""

    task_name = "background"
    _task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name=self.task_name)

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None


class PeriodicCheck(BackgroundLoop):
    """A BackgroundLoop that runs `check()` every `interval_s`; a failed check is reported to
    `check_failed()` and tried again at the next interval (the thing checked may be restarting)."""

    interval_s = 1.0

    async def check(self) -> object:
        raise NotImplementedError

    def check_failed(self, exc: Exception) -> None:
        raise NotImplementedError

    async def run(self) -> None:
        while True:
            try:
                await self.check()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.check_failed(exc)
            await asyncio.sleep(self.interval_s)
