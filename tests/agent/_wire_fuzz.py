"""Fuzz targets and input strategies for everything that decodes outside input: the JSON
wire models (both directions between agent and hub), gossip framing and message
handling (frame → JSON → model → record checks → store), and the TOML loaders
(agent.toml, RELEASE.toml, group policies, hub.toml).

Each target declares the exceptions it may raise (its format error); anything else is
a finding. Inputs come from Hypothesis: raw bytes, random JSON values, valid seed
messages with one subtree replaced by a random value, hostile shapes (deep nesting,
5,000-digit numbers, NaN), and for TOML, seed files with characters mutated. Used by
tests/agent/test_wire_fuzz.py (a short sample) and tests/bench/bench_wire_fuzz.py
(100,000+ inputs).
"""

from __future__ import annotations

import base64
import json
import random
import struct
import tempfile
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import strategies as st

from agent.config import AgentConfig
from agent.errors import AgentError
from agent.gossip.anti_entropy import merge_delta
from agent.gossip.framing import FramedStream
from agent.gossip.node import _parse
from agent.gossip.store import GossipStore
from agent.gossip.tls import DeviceCertificates
from agent.policy.model import Policy
from agent.wire.decoding import decode_json
from agent.wire.enrollment import EnrollRequest, EnrollResponse
from agent.wire.gossip import (
    BatchAnswer,
    DeltaMessage,
    DigestMessage,
    DoneMessage,
    FetchRequest,
    FileAnswer,
    GossipRecord,
    Inventory,
    MissingAnswer,
    RecordIds,
    RelayedResults,
)
from agent.wire.lease import LeaseAnswer, LeaseRequest, SignedLeaseRequest
from agent.wire.release import ReleaseInfo, ReleaseManifest
from agent.wire.result import Outcome, ResultRecord, SignedResult
from agent.wire.rollout import GroupRollouts, RolloutEntry
from agent.wire.validation import parse_json_model
from hub.config import HubConfig
from hub.devices.certificate_authority import DeviceCertificateAuthority
from hub.errors import HubConfigError

REPO = Path(__file__).resolve().parents[2]
DECLARED: tuple[type[BaseException], ...] = (AgentError, HubConfigError)

# -- seeds: one valid instance of each format --------------------------------------

_KEY = Ed25519PrivateKey.generate()
_RESULT = SignedResult.sign(ResultRecord(
    record_id="6a0c8c6e-8a4e-4b38-9d1e-2a9a3f9c0001", device_id="dev-0123456789abcdef0123",
    release="releases/app/1.0.0/app.tar", name="app", version="1.0.0",
    outcome=Outcome.REVERTED, reason="health check failed", started_at="2026-11-25T00:00:00Z",
    finished_at="2026-11-25T00:01:00Z", timings={"install_s": 1.5}, bytes_from_peers=10,
), _KEY)
_ROLLOUTS = GroupRollouts(group="lab", rollouts=[RolloutEntry(
    release="releases/app/1.0.0/app.tar", stages=[2, 25, 100], stage_percent=25,
    current_stage=1, pilot_devices=["dev-0123456789abcdef0123"],
    started_at="2026-11-25T00:00:00Z")])
_LEASE = SignedLeaseRequest.sign(LeaseRequest(
    action="acquire", device_id="dev-0123456789abcdef0123", group="lab",
    release="releases/app/1.0.0/app.tar", ttl_seconds=600, issued_at="2026-11-25T00:00:00Z"),
    _KEY)
_RECORD = GossipRecord.sign("dev-0123456789abcdef0123", 3, "result", _RESULT.record.record_id,
                            _RESULT.to_bytes().decode(), _KEY)
_INVENTORY = GossipRecord.sign("dev-0123456789abcdef0123", 4, "inventory", "inventory",
                               Inventory(site="branch", gossip="127.0.0.2:7881",
                                         deployments={"releases/a": "committed"})
                               .model_dump_json(), _KEY)
_RELEASE_TOML = (
    'name = "app"\nversion = "1.2.3"\nseverity = "important"\ncategory = "application"\n'
    'reboot = false\n[install]\ntype = "file-tree"\nroot = "/opt/app"\npreserve = ["etc"]\n'
    '[[health]]\ntype = "file-hash"\npath = "/opt/app/VERSION"\nsha256 = "' + "0" * 64 + '"\n'
    '[[health]]\ntype = "tcp"\nhost = "127.0.0.1"\nport = 8080\ntimeout = 2.5\n'
)
_POLICY_TOML = (
    'timezone = "Europe/Berlin"\npaused = false\njitter_minutes = 30\nreboot = "window"\n'
    '[[windows]]\nname = "night"\nwhen = "Mon-Fri 22:00-05:00"\n'
    '[deadline_hours]\ncritical = 24\nimportant = 72\n'
    '[deferral]\ndays = 30\nsecurity_severities = ["critical"]\n'
    '[blocklist]\nreleases = ["nvidia-*"]\ncategories = ["driver*"]\n'
    '[disruption]\nmax_concurrent = 1\nper_label = "cluster"\n'
)
_RELEASE_INFO = {"manifest": ReleaseManifest.model_validate(
    __import__("tomllib").loads(_RELEASE_TOML)).model_dump(mode="json"),
    "payload_name": "app.tar", "published_at": "2026-11-25T00:00:00Z",
    "torrent": {"path": "releases/app/1.2.3/app.tar.torrent", "info_hash_v1": "a" * 40,
                "info_hash_v2": "b" * 64}}

JSON_SEEDS: dict[str, Any] = {
    "result": json.loads(_RESULT.to_bytes()),
    "rollouts": json.loads(_ROLLOUTS.to_bytes()),
    "lease": json.loads(_LEASE.to_bytes()),
    "lease_answer": {"granted": False, "held": 2, "max_concurrent": 2,
                     "retry_at": "2026-11-25T00:10:00Z", "reason": "budget"},
    "enroll": {"token_secret": "s" * 40, "device_id": "dev-0123456789abcdef0123",
               "public_key": base64.b64encode(b"k" * 32).decode(), "name": "n",
               "hostname": "h", "group": "lab", "site": "branch", "labels": {"a": "b"},
               "proof": "cHJvb2Y="},
    "enroll_response": {"device_id": "dev-0123456789abcdef0123", "status": "accepted",
                        "certificate": "-----BEGIN CERTIFICATE-----", "ca_certificate": ""},
    "record_ids": {"records": [{"device_id": "dev-0123456789abcdef0123",
                                "record_id": "6a0c8c6e-0001"}], "record_ids": ["6a0c8c6e"]},
    "relayed": {"results": [json.loads(_RESULT.to_bytes())]},
    "missing_answer": {"missing_records": [{"device_id": "dev-0123456789abcdef0123",
                                            "record_id": "6a0c8c6e-0001"}], "missing": []},
    "batch_answer": {"held": [{"device_id": "dev-0123456789abcdef0123",
                               "record_id": "6a0c8c6e-0001"}], "stored": ["6a0c8c6e-0001"],
                     "refused": [{"device_id": "d", "record_id": "r", "error": "e"}]},
    "release_info": _RELEASE_INFO,
    "digest": DigestMessage(digest={"dev-0123456789abcdef0123": 4}).model_dump(mode="json"),
    "delta": DeltaMessage(
        digest={"dev-0123456789abcdef0123": 4}, records=[_RECORD, _INVENTORY],
        certificates={"dev-0123456789abcdef0123": base64.b64encode(b"not a cert").decode()},
    ).model_dump(mode="json"),
    "done": DoneMessage(accepted=1, refused=0).model_dump(mode="json"),
    "fetch": FetchRequest(path="metadata/timestamp.json").model_dump(mode="json"),
    "file": FileAnswer(status=200, length=12).model_dump(mode="json"),
}
TOML_SEEDS = {
    "agent.toml": (REPO / "config" / "agent.toml").read_text(),
    "hub.toml": (REPO / "config" / "hub.toml").read_text(),
    "release.toml": _RELEASE_TOML,
    "policy.toml": _POLICY_TOML,
}

# -- strategies ----------------------------------------------------------------------

INTERESTING: list[Any] = [
    None, True, False, 0, -1, 1, 2**31, 2**63, -(2**63), 2**64, 10**40, 0.5, -0.0, 1e308,
    "", "x", "releases/app/1.0.0/app.tar", "dev-0123456789abcdef0123", "result", "inventory",
    "delta", "digest", "fetch", "2026-11-25T00:00:00Z", "1.0.0", "../..", "\u0000", [], {},
    [[[]]], {"type": "delta"}, {"record": {}}, ["a"] * 40,
]
_scalars = st.one_of(
    st.sampled_from(INTERESTING), st.integers(), st.text(max_size=8),
    st.floats(allow_nan=False, allow_infinity=False),
)
json_values = st.recursive(
    _scalars,
    lambda children: st.one_of(st.lists(children, max_size=4),
                               st.dictionaries(st.text(max_size=6), children, max_size=4)),
    max_leaves=8,
)

def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += _paths(child, (*prefix, index))
    return found


def _replaced(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[path[0]] = _replaced(value[path[0]], path[1:], new)
    return copy


HOSTILE_TEXT = [
    "[" * 100_000, "[" * 3000 + "]" * 3000, '{"a":' * 2000 + "1" + "}" * 2000,
    "9" * 5000, "-" + "9" * 5000, "1e99999", "NaN", "-Infinity", "1." + "1" * 5000,
    "\ud800", "\x00", '"\\ud800"', '"' + "\\u0000" * 50 + '"',
]


@st.composite
def mutated_seed(draw: st.DrawFn, seed: Any) -> bytes:
    """`seed` with one subtree replaced by a random or hostile value."""
    paths = _paths(seed)
    path = paths[draw(st.integers(0, len(paths) - 1))]
    new = draw(st.one_of(json_values, st.sampled_from(["@HOSTILE@"])))
    text = json.dumps(_replaced(seed, path, new))
    if new == "@HOSTILE@":
        text = text.replace('"@HOSTILE@"', draw(st.sampled_from(HOSTILE_TEXT)))
    return text.encode("utf-8", "surrogatepass")


def json_inputs(seed: Any) -> st.SearchStrategy[bytes]:
    return st.one_of(
        mutated_seed(seed),
        mutated_seed(seed),
        json_values.map(lambda v: json.dumps(v).encode()),
        st.binary(max_size=200),
        st.sampled_from(HOSTILE_TEXT).map(lambda t: t.encode("utf-8", "surrogatepass")),
    )


@st.composite
def frames(draw: st.DrawFn) -> bytes:
    """A byte stream as a peer sends it: a 4-byte length and a message (or lies)."""
    payload = draw(st.one_of(*(json_inputs(JSON_SEEDS[name]) for name in
                                ("digest", "delta", "done", "fetch", "file"))))
    length = draw(st.one_of(st.just(len(payload)), st.integers(0, 2**32 - 1)))
    return struct.pack(">I", length) + payload


@st.composite
def mutated_toml(draw: st.DrawFn, seed: str) -> str:
    text = seed
    for _ in range(draw(st.integers(1, 4))):
        position = draw(st.integers(0, len(text)))
        insert = draw(st.one_of(
            st.text(max_size=8), st.sampled_from(["[", "]", "{", "=", "\n", '"', "[[",
                                                  "9" * 5000, "[" * 2000, "inf", "nan",
                                                  "a = " + "{b = " * 500]),
        ))
        cut = draw(st.integers(0, 8))
        text = text[:position] + insert + text[position + cut:]
    return text


def toml_inputs(seed: str) -> st.SearchStrategy[str]:
    lines = st.lists(st.tuples(st.from_regex(r"[a-z_.\[\]]{1,12}", fullmatch=True),
                               st.sampled_from(['"x"', "1", "2.5", "true", "[1, 2]", "{a = 1}",
                                                "9" * 5000, "[" * 3000])),
                     max_size=6).map(lambda kv: "\n".join(f"{k} = {v}" for k, v in kv))
    return st.one_of(mutated_toml(seed), mutated_toml(seed), lines, st.text(max_size=200))


# -- batches: one input from Hypothesis, more from a Random it seeds ------------------
# Hypothesis spends about 3 ms drawing one structured input; the benchmark needs 100,000.
# Each example therefore carries the structured input plus `batch - 1` mutants made by
# a plain random.Random seeded by Hypothesis (reproducible from the failing example).

_ALPHABET = 'az09 "\\/{}[]:,.-_\n\t\u00e9\u4e2d\U0001f600\ud800\x00'


def _random_text(rng: random.Random) -> str:
    return "".join(rng.choice(_ALPHABET) for _ in range(rng.randint(0, 10)))


def random_json(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if depth > 3 or roll < 0.55:
        kind = rng.randrange(5)
        if kind == 0:
            return rng.randint(-(2**70), 2**70)
        if kind == 1:
            return rng.random() * 10 ** rng.randint(-10, 300)
        if kind == 2:
            return _random_text(rng)
        return rng.choice(INTERESTING)
    if roll < 0.8:
        return [random_json(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {_random_text(rng): random_json(rng, depth + 1) for _ in range(rng.randint(0, 4))}


def _mutate_bytes(data: bytes, rng: random.Random) -> bytes:
    buffer = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        position = rng.randint(0, len(buffer))
        action = rng.randrange(5)
        if action == 0 and buffer:
            buffer[min(position, len(buffer) - 1)] ^= 1 << rng.randrange(8)
        elif action == 1:
            buffer[position:position] = rng.choice(
                [b"[", b"{", b'"', b"\\", b"-", b"9" * rng.randint(1, 6000), b"\xff", b"null",
                 b"[" * rng.randint(1, 5000), b",", b":", b"e999"])
        elif action == 2:
            del buffer[position:position + rng.randint(1, 16)]
        elif action == 3:
            start = rng.randint(0, len(buffer))
            buffer[position:position] = buffer[start:start + rng.randint(1, 64)]
        else:
            del buffer[position:]
    return bytes(buffer)


def mutate_json(seed: Any, rng: random.Random) -> bytes:
    """One hostile variant of a valid message."""
    roll = rng.random()
    if roll < 0.45:
        value = seed
        for _ in range(rng.randint(1, 3)):
            paths = _paths(value)
            value = _replaced(value, rng.choice(paths), random_json(rng))
        return json.dumps(value).encode("utf-8", "surrogatepass")
    if roll < 0.55:
        value = _replaced(seed, rng.choice(_paths(seed)), "@HOSTILE@")
        return json.dumps(value).replace('"@HOSTILE@"', rng.choice(HOSTILE_TEXT)).encode(
            "utf-8", "surrogatepass")
    if roll < 0.9:
        return _mutate_bytes(json.dumps(seed).encode(), rng)
    if roll < 0.95:
        return json.dumps(random_json(rng)).encode("utf-8", "surrogatepass")
    return rng.randbytes(rng.randint(0, 64))


def mutate_toml(seed: str, rng: random.Random) -> str:
    text = seed
    for _ in range(rng.randint(1, 4)):
        position = rng.randint(0, len(text))
        insert = rng.choice(["[", "]", "{", "}", "=", "\n", '"', "'", "[[", "]]", ",", ".",
                             "9" * rng.randint(1, 6000), "[" * rng.randint(1, 3000), "inf",
                             "nan", "1e999", "a = " + "{b = " * rng.randint(1, 600),
                             "\ud800", "\x00", "x = 1\n", "\\u0000", _random_text(rng)])
        text = text[:position] + insert + text[position + rng.randint(0, 8):]
    return text


def mutate_frame(seeds: list[Any], rng: random.Random) -> bytes:
    payload = mutate_json(rng.choice(seeds), rng)
    length = len(payload) if rng.random() < 0.9 else rng.randrange(2**32)
    return struct.pack(">I", length) + payload


def batches(first: st.SearchStrategy[Any], mutate: Callable[[random.Random], Any],
            batch: int) -> st.SearchStrategy[list[Any]]:
    """Lists of `batch` inputs: `first`'s, then mutants from a Hypothesis-seeded Random."""
    def expand(drawn: tuple[Any, int]) -> list[Any]:
        rng = random.Random(drawn[1])
        return [drawn[0], *(mutate(rng) for _ in range(batch - 1))]
    return st.tuples(first, st.integers(0, 2**64)).map(expand)


def json_batches(seed: Any, batch: int) -> st.SearchStrategy[list[bytes]]:
    return batches(json_inputs(seed), lambda rng: mutate_json(seed, rng), batch)


def toml_batches(seed: str, batch: int) -> st.SearchStrategy[list[str]]:
    return batches(toml_inputs(seed), lambda rng: mutate_toml(seed, rng), batch)


def frame_batches(batch: int) -> st.SearchStrategy[list[bytes]]:
    seeds = [JSON_SEEDS[name] for name in ("digest", "delta", "done", "fetch", "file")]
    return batches(frames(), lambda rng: mutate_frame(seeds, rng), batch)


# -- targets -------------------------------------------------------------------------


def _drive(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine that never suspends (our in-memory stream never blocks)."""
    try:
        coroutine.send(None)
    except StopIteration as stop:
        return stop.value
    coroutine.close()
    raise AssertionError("the coroutine suspended")


class _BytesStream:
    def __init__(self, data: bytes) -> None:
        self.data = data

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        chunk, self.data = self.data[:max_bytes or 65536], self.data[max_bytes or 65536:]
        return chunk


_MESSAGES = (("fetch", FetchRequest), ("digest", DigestMessage), ("delta", DeltaMessage),
             ("done", DoneMessage), ("file", FileAnswer))


@dataclass
class GossipReceiver:
    """The server side of one gossip message, as GossipNode._answer takes it in."""

    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="fuzz-")))

    def __post_init__(self) -> None:
        authority = DeviceCertificateAuthority.load_or_create(self.workdir / "ca")
        self.certificates = DeviceCertificates(authority.certificate)
        self.store = GossipStore(self.workdir / "gossip.db")

    def __call__(self, data: bytes) -> None:
        framed = FramedStream(_BytesStream(data), "fuzz")  # type: ignore[arg-type]
        message = _drive(framed.receive_message())
        kind = message.get("type")
        model: type[Any] = DigestMessage  # what the node expects when it is not `fetch`
        for name, candidate in _MESSAGES:
            if kind == name:
                model = candidate
        parsed = _parse(model, message, "fuzz")
        if isinstance(parsed, DeltaMessage):
            merge_delta(self.store, parsed, self.certificates, "fuzz", "")


def _json_target(model: Any, seed: str) -> tuple[Callable[[bytes], Any], Any]:
    return (lambda data: parse_json_model(model, data, "fuzz")), seed


def _toml_file_target(load: Callable[[Path], Any]) -> Callable[[str], Any]:
    path = Path(tempfile.mkdtemp(prefix="fuzz-")) / "input.toml"

    def target(text: str) -> None:
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        load(path)
    return target


JSON_TARGETS: dict[str, tuple[Callable[[bytes], Any], str]] = {
    "SignedResult.from_bytes": ((lambda d: SignedResult.from_bytes(d, "fuzz")), "result"),
    "GroupRollouts.from_bytes": ((lambda d: GroupRollouts.from_bytes(d, "fuzz")), "rollouts"),
    "SignedLeaseRequest.from_bytes": ((lambda d: SignedLeaseRequest.from_bytes(d, "fuzz")),
                                      "lease"),
    "LeaseAnswer": _json_target(LeaseAnswer, "lease_answer"),
    "EnrollRequest": _json_target(EnrollRequest, "enroll"),
    "EnrollResponse": _json_target(EnrollResponse, "enroll_response"),
    "RecordIds": _json_target(RecordIds, "record_ids"),
    "RelayedResults": _json_target(RelayedResults, "relayed"),
    "MissingAnswer": _json_target(MissingAnswer, "missing_answer"),
    "BatchAnswer": _json_target(BatchAnswer, "batch_answer"),
    "ReleaseInfo.from_custom": ((lambda d: ReleaseInfo.from_custom(
        {"meisitong": decode_json(d, "fuzz")}, "releases/x")), "release_info"),
}
TOML_TARGETS: dict[str, tuple[Callable[[str], Any], str]] = {
    "AgentConfig.load": (_toml_file_target(AgentConfig.load), "agent.toml"),
    "HubConfig.load": (_toml_file_target(HubConfig.load), "hub.toml"),
    "ReleaseManifest.from_toml_file": (_toml_file_target(ReleaseManifest.from_toml_file),
                                       "release.toml"),
    "Policy.from_toml": ((lambda t: Policy.from_toml(t.encode("utf-8", "surrogatepass"),
                                                      "policies/fuzz.toml")), "policy.toml"),
}


@dataclass
class Findings:
    """Inputs per target and every exception that is not the target's declared one."""

    inputs: int = 0
    declared: int = 0
    undeclared: list[tuple[str, str, bytes | str]] = field(default_factory=list)

    def run(self, name: str, target: Callable[[Any], Any], data: Any) -> None:
        self.inputs += 1
        try:
            target(data)
        except DECLARED:
            self.declared += 1
        except Exception as exc:  # noqa: BLE001 - that is what we are looking for
            self.undeclared.append((name, f"{type(exc).__name__}: {str(exc)[:200]}",
                                    data[:300]))
