"""Voicemail: record what the client says, through a fork of their media in rtpengine.

rtpengine 10.5 has no recording daemon here (its `start recording` needs a method this build lacks),
but it can fork one party's media to a new endpoint: `subscribe request` offers a copy of the client's
stream, `subscribe answer` tells it where to send it. The endpoint is a small RTP receiver in the
controller that appends the G.711 payload to a raw file; when the recording stops, sox turns it into a
WAV file and the message's metadata is kept in Redis and next to the file. A controller that restarts
after a call has ended loses nothing; one that dies during a recording keeps what was written so far
on disk, without metadata.
"""

from __future__ import annotations

import asyncio
import json
import logging
import struct
import subprocess
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from controller.adapters.prompts import wav_seconds
from controller.adapters.rtpengine_ng import RtpengineNg
from controller.codecs.sdp import audio_sdp, offered_codecs
from controller.wire import VOICEMAIL_KEY, VOICEMAILS_KEY

log = logging.getLogger(__name__)

SOX_TYPE = {8: "al", 0: "ul"}  # RTP payload type -> sox raw type (A-law, mu-law)


class RtpRecorder(asyncio.DatagramProtocol):
    """Appends the audio payload of the RTP packets it receives to a raw G.711 file."""

    def __init__(self, raw_path: Path):
        self.raw = open(raw_path, "ab")  # closed in close()
        self.payload_type: int | None = None
        self.packets = 0

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if len(data) < 12 or data[0] >> 6 != 2:
            return
        pt = data[1] & 0x7F
        if pt not in SOX_TYPE:
            return  # telephone-events, comfort noise: not speech
        offset = 12 + 4 * (data[0] & 0x0F)
        if data[0] & 0x10 and len(data) >= offset + 4:  # header extension
            offset += 4 + 4 * struct.unpack("!H", data[offset + 2:offset + 4])[0]
        if data[0] & 0x20:  # padding
            data = data[: len(data) - data[-1]]
        self.payload_type = pt if self.payload_type is None else self.payload_type
        if pt == self.payload_type:
            self.raw.write(data[offset:])
            self.packets += 1

    def close(self) -> None:
        self.raw.close()


@dataclass
class Voicemail:
    id: str
    tenant: str
    mailbox: str
    client_number: str
    conversation: str
    transfer: str
    started_ms: int
    seconds: float = 0.0
    file: str = ""


@dataclass
class _Recording:
    message: Voicemail
    transport: asyncio.DatagramTransport
    recorder: RtpRecorder
    raw: Path
    call_id: str
    to_tag: str


class VoicemailBox:
    def __init__(self, ng: RtpengineNg, redis: Redis, directory: Path, listen_address: str):
        self.ng = ng
        self.redis = redis
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.listen_address = listen_address
        self._active: dict[tuple[str, str], _Recording] = {}

    async def start(self, *, call_id: str, leg: str, message: Voicemail) -> None:
        """Fork `leg`'s media in rtpengine call `call_id` to a new recorder."""
        raw = self.directory / f"{message.id}.raw"
        loop = asyncio.get_running_loop()
        transport, recorder = await loop.create_datagram_endpoint(lambda: RtpRecorder(raw),
                                                                  local_addr=(self.listen_address, 0))
        try:
            offer = await self.ng.request("subscribe request", call_id=call_id, from_tag=leg)
            host, port = transport.get_extra_info("sockname")[:2]
            await self.ng.request("subscribe answer", call_id=call_id, to_tag=offer["to-tag"],
                                  sdp=recorder_answer(offer["sdp"], host, port))
        except Exception:
            transport.close()
            recorder.close()
            raise
        self._active[(message.conversation, leg)] = _Recording(message, transport, recorder, raw, call_id,
                                                               offer["to-tag"])
        log.info("recording %s's voicemail for mailbox %s", message.client_number, message.mailbox,
                 extra={"conversation": message.conversation})

    async def stop(self, conversation: str, leg: str) -> Voicemail | None:
        recording = self._active.pop((conversation, leg), None)
        if recording is None:
            return None
        try:
            await self.ng.request("unsubscribe", call_id=recording.call_id, to_tag=recording.to_tag)
        except Exception as exc:  # the call may be gone already: the recording is what matters
            log.info("unsubscribe after voicemail: %s", exc)
        recording.transport.close()
        recording.recorder.close()
        return await asyncio.to_thread(self._finish, recording)

    def _finish(self, recording: _Recording) -> Voicemail:
        message, raw = recording.message, recording.raw
        wav = self.directory / f"{message.id}.wav"
        if recording.recorder.packets:
            sox_type = SOX_TYPE[recording.recorder.payload_type or 8]
            subprocess.run(["sox", "-t", sox_type, "-r", "8000", "-c", "1", str(raw), "-b", "16", str(wav)],
                           check=True, capture_output=True, timeout=60)
            message.seconds = round(wav_seconds(wav), 2)
            message.file = str(wav)
            raw.unlink(missing_ok=True)
        (self.directory / f"{message.id}.json").write_text(json.dumps(asdict(message), indent=1))
        return message

    async def save(self, message: Voicemail) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(VOICEMAIL_KEY.format(message.id), mapping={k: str(v) for k, v in asdict(message).items()})
            pipe.zadd(VOICEMAILS_KEY, {message.id: message.started_ms})
            await pipe.execute()

    async def close(self) -> None:
        for conversation, leg in list(self._active):
            await self.stop(conversation, leg)


def new_voicemail(**fields: Any) -> Voicemail:
    return Voicemail(id=time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:8],
                     started_ms=int(time.time() * 1000), **fields)


async def list_voicemails(redis: Redis, limit: int = 100) -> list[dict[str, str]]:
    ids = await redis.zrevrange(VOICEMAILS_KEY, 0, limit - 1)
    out = []
    for raw_id in ids:
        fields = await redis.hgetall(VOICEMAIL_KEY.format(raw_id.decode() if isinstance(raw_id, bytes) else raw_id))
        out.append({(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
                    for k, v in fields.items()})
    return out


def recorder_answer(offer_sdp: str, host: str, port: int) -> str:
    """Answer a subscription offer for the recorder at host:port. rtpengine refuses an answer whose
    codecs differ from the offer's, so the offer's payload types and their attributes are echoed."""
    return audio_sdp(host, port, offered_codecs(offer_sdp), direction="recvonly", origin="xfer-voicemail")
