"""Reading an HTTP request body from outside: bounded, then validated as a wire model."""

from __future__ import annotations

from starlette.requests import Request

from agent.errors import WireFormatError
from agent.wire.validation import ModelT, parse_json_model
from hub.errors import BodyTooLargeError

MAX_BODY_BYTES = 64 * 1024

async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The body, refused as soon as it passes `limit` bytes."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLargeError(f"request body larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json_model(
    request: Request, model: type[ModelT], source: str, limit: int = MAX_BODY_BYTES
) -> ModelT:
    """Raises BodyTooLargeError, or WireFormatError naming `source` for bad JSON or fields."""
    return parse_json_model(model, await read_body(request, limit), source, WireFormatError)
