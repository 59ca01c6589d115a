"""Turn pydantic's validation errors into one message that names the source and keys."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from agent.errors import WireFormatError
from agent.wire.decoding import decode_json

ModelT = TypeVar("ModelT", bound=BaseModel)

NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,62}$"
"""Names that become path components (release names, groups, sites)."""


class StrictModel(BaseModel):
    """Unknown keys are errors: a typo in a spec must not silently mean a default."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def describe_validation_error(error: ValidationError, source: str) -> str:
    """`source: key.path: message` for each problem, one per line."""
    lines = []
    for problem in error.errors():
        location = ".".join(str(part) for part in problem["loc"]) or "(top level)"
        lines.append(f"{source}: {location}: {problem['msg']}")
    return "\n".join(lines)


def parse_model(
    model: type[ModelT],
    data: Any,
    source: str,
    error_type: type[Exception] = WireFormatError,
) -> ModelT:
    """Validate `data` as `model`, raising `error_type` with a located message."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise error_type(describe_validation_error(exc, source)) from None


def parse_json_model(
    model: type[ModelT],
    data: bytes,
    source: str,
    error_type: type[Exception] = WireFormatError,
) -> ModelT:
    """Decode JSON bytes and validate them as `model`; any failure is one `error_type`
    naming `source`."""
    decoded = decode_json(data, source, error_type)
    return parse_model(model, decoded, source, error_type)
