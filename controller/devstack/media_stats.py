"""Who sent how much media, read from rtpengine: the evidence that people really heard each other."""

from __future__ import annotations

import asyncio
from typing import Any

from controller.adapters.rtpengine_ng import RtpengineNg
from controller.errors import RtpengineError
from controller.tasks import cancel_and_wait


def rtp_packets_by_tag(query_reply: dict[str, Any]) -> dict[str, int]:
    """RTP packets rtpengine received FROM each party (tag) of a call, from an ng `query` reply."""
    out: dict[str, int] = {}
    for tag, info in (query_reply.get("tags") or {}).items():
        total = 0
        for media in info.get("medias") or []:
            for stream in media.get("streams") or []:
                if "RTP" in (stream.get("flags") or []):
                    total += int((stream.get("stats") or {}).get("packets", 0))
        out[tag] = total
    return out


class MediaWatcher:
    """Polls rtpengine while calls run and keeps each call's last per-tag packet counts.

    rtpengine forgets a call the moment it is deleted, so anything that wants to report a finished
    call's media must have looked while it ran.
    """

    def __init__(self, ng: RtpengineNg, interval: float = 0.2):
        self.ng = ng
        self.interval = interval
        self.last: dict[str, dict[str, int]] = {}
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> MediaWatcher:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        await cancel_and_wait(self._task)

    async def active_calls(self) -> list[str]:
        return list((await self.ng.list_calls(limit=100_000)).get("calls") or [])

    async def _run(self) -> None:
        while True:
            for call_id in await self.active_calls():
                try:
                    self.last[call_id] = rtp_packets_by_tag(await self.ng.query(call_id))
                except RtpengineError:
                    pass  # deleted between list and query
            await asyncio.sleep(self.interval)
