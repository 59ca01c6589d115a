"""Length-prefixed frames over a byte stream, and a byte counter under TLS.

A frame is a 4-byte big-endian length and that many bytes (a JSON message, or a file's
content). A length over the reader's limit ends the conversation before anything is
buffered, so a peer cannot make us hold more than we allow.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import trio
from pydantic import BaseModel

from agent.errors import GossipError, MalformedFrameError
from agent.wire.decoding import decode_json

_HEADER = struct.Struct(">I")
MAX_MESSAGE_BYTES = 8 * 1024 * 1024


@dataclass
class Traffic:
    """Bytes that crossed the wire (TLS records included), both directions."""

    sent: int = 0
    received: int = 0


class CountingStream(trio.abc.Stream):
    """A transport stream that adds what passes through it to a Traffic."""

    def __init__(self, inner: trio.abc.Stream, traffic: Traffic) -> None:
        self.inner = inner
        self.traffic = traffic

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        self.traffic.sent += len(data)
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        data = await self.inner.receive_some(max_bytes)
        self.traffic.received += len(data)
        return data

    async def send_eof(self) -> None:
        if isinstance(self.inner, trio.abc.HalfCloseableStream):
            await self.inner.send_eof()

    async def aclose(self) -> None:
        await self.inner.aclose()


class FramedStream:
    def __init__(self, stream: trio.abc.Stream, peer: str) -> None:
        self.stream = stream
        self.peer = peer
        self._buffer = bytearray()

    async def send_frame(self, data: bytes) -> None:
        await self.stream.send_all(_HEADER.pack(len(data)) + data)

    async def send_message(self, message: BaseModel) -> None:
        await self.send_frame(message.model_dump_json().encode("utf-8"))

    async def receive_frame(self, limit: int = MAX_MESSAGE_BYTES) -> bytes:
        header = await self._receive_exactly(_HEADER.size)
        (length,) = _HEADER.unpack(header)
        if length > limit:
            raise MalformedFrameError(f"{self.peer}: frame of {length} bytes, limit {limit}")
        return await self._receive_exactly(length)

    async def receive_message(self) -> dict[str, Any]:
        frame = await self.receive_frame()
        message = decode_json(frame, f"{self.peer}: message", MalformedFrameError)
        if not isinstance(message, dict):
            raise MalformedFrameError(f"{self.peer}: message is not a JSON object")
        return message

    async def _receive_exactly(self, count: int) -> bytes:
        while len(self._buffer) < count:
            chunk = await self.stream.receive_some(max(65536, count - len(self._buffer)))
            if not chunk:
                raise GossipError(f"{self.peer}: connection closed mid-message")
            self._buffer += chunk
        data = bytes(self._buffer[:count])
        del self._buffer[:count]
        return data
