"""JSON and TOML text from outside, decoded into plain values within fixed bounds.

Python's decoders end with a RecursionError on deeply nested input and with a ValueError
("Exceeds the limit (4300 digits) for integer string conversion") on a long integer;
neither is the error the callers catch, so one frame from a peer or one body from the
hub used to end the daemon. Every decoder of outside text goes through here instead:
nesting deeper than `MAX_DEPTH`, an integer of more than `MAX_INT_DIGITS` digits, a
float literal longer than `MAX_FLOAT_CHARS` or not finite, and NaN/Infinity all raise
the caller's declared error (WireFormatError by default) naming the source.

None of our formats nests deeper than 8 or needs a number beyond 2**64 (20 digits).
"""

from __future__ import annotations

import json
import math
import tomllib
from typing import Any

from agent.errors import WireFormatError

MAX_DEPTH = 64
MAX_INT_DIGITS = 40
MAX_FLOAT_CHARS = 64


class _OutOfBounds(ValueError):
    """Raised from inside a decoder hook; turned into the caller's error."""


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise _OutOfBounds(f"an integer of {len(text.lstrip('-'))} digits "
                           f"(at most {MAX_INT_DIGITS})")
    return int(text)


def _bounded_float(text: str) -> float:
    if len(text) > MAX_FLOAT_CHARS:
        raise _OutOfBounds(f"a number of {len(text)} characters (at most {MAX_FLOAT_CHARS})")
    value = float(text)
    if not math.isfinite(value):
        raise _OutOfBounds(f"the number {text[:20]} is out of range")
    return value


def _refuse_constant(text: str) -> Any:
    raise _OutOfBounds(f"{text} is not a JSON number")


def decode_json(
    data: bytes | bytearray | str, source: str, error_type: type[Exception] = WireFormatError
) -> Any:
    """The value of JSON `data`; any problem is one `error_type` naming `source`."""
    try:
        value = json.loads(
            data, parse_int=_bounded_int, parse_float=_bounded_float,
            parse_constant=_refuse_constant,
        )
    except RecursionError:
        raise error_type(f"{source}: JSON nested deeper than {MAX_DEPTH} levels") from None
    except _OutOfBounds as exc:
        raise error_type(f"{source}: JSON holds {exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise error_type(f"{source}: not JSON: {exc}") from None
    except (TypeError, ValueError) as exc:  # e.g. bytes in no UTF encoding json detects
        raise error_type(f"{source}: not JSON: {exc}") from None
    _check_depth(value, source, error_type)
    return value


def decode_toml(
    text: str, source: str, error_type: type[Exception] = WireFormatError
) -> dict[str, Any]:
    """The table of TOML `text`; any problem is one `error_type` naming `source`."""
    try:
        table = tomllib.loads(text, parse_float=_bounded_float)
    except RecursionError:
        raise error_type(f"{source}: TOML nested deeper than {MAX_DEPTH} levels") from None
    except _OutOfBounds as exc:
        raise error_type(f"{source}: TOML holds {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise error_type(f"{source}: not valid TOML: {exc}") from None
    except ValueError as exc:  # an integer past Python's int max str digits
        raise error_type(f"{source}: not valid TOML: {exc}") from None
    _check_depth(table, source, error_type, check_ints=True)
    return table


def _check_depth(
    value: Any, source: str, error_type: type[Exception], check_ints: bool = False
) -> None:
    """Walk without recursion: the depth bound, and (TOML) the integer bound."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            if check_ints and isinstance(item, int) and not isinstance(item, bool) and (
                abs(item) >= 10 ** MAX_INT_DIGITS
            ):
                raise error_type(f"{source}: holds an integer of more than "
                                 f"{MAX_INT_DIGITS} digits")
            continue
        if depth > MAX_DEPTH:
            raise error_type(f"{source}: nested deeper than {MAX_DEPTH} levels")
        stack.extend((child, depth + 1) for child in children)
