"""One agent's gossip endpoint: a mutual-TLS server, push-pull exchanges, file relay.

An exchange (we dial a peer): we send our digest; it answers with what we lack and its
own digest; we take that in and send what it lacks; it answers `done`. One round trip
and a half, and both ends are even afterwards (Scuttlebutt push-pull).

Nothing a peer does ends the node: a failed handshake, a malformed, oversized or
hostile message (deep nesting, a huge number), a forged record or a timeout ends that
one conversation, is logged, and (when the peer is to blame, not the network) costs the
device seen in TLS a strike in `SiteMembers`. Even an exception we did not foresee ends
only its conversation (logged with its traceback, as the bug it is).
"""

from __future__ import annotations

import contextlib
import logging
import random
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import trio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import BaseModel

from agent.errors import AgentError, GossipError, MalformedFrameError
from agent.gossip.anti_entropy import MergeOutcome, delta_for, merge_delta
from agent.gossip.framing import CountingStream, FramedStream, Traffic
from agent.gossip.relay_files import TrustedFiles
from agent.gossip.site_members import SiteMembers
from agent.gossip.store import GossipStore
from agent.gossip.tls import DeviceCertificate, DeviceCertificates, peer_certificate
from agent.listen_address import naming_listen_address
from agent.wire.gossip import (
    MAX_RECORDS_PER_MESSAGE,
    DeltaMessage,
    DigestMessage,
    DoneMessage,
    FetchRequest,
    FileAnswer,
    GossipRecord,
    Inventory,
    RecordKind,
)
from agent.wire.validation import parse_model

log = logging.getLogger(__name__)
ModelT = TypeVar("ModelT", bound=BaseModel)

EXCHANGE_TIMEOUT = 15.0
MAX_FILE_BYTES = 32 * 1024 * 1024
MAX_CONCURRENT_CONVERSATIONS = 64


@dataclass(frozen=True)
class NodeIdentity:
    """What the node proves and signs with (see `tls.SiteCredentials.load`)."""

    device: DeviceCertificate
    private_key: Ed25519PrivateKey
    certificate_der: bytes


class _PeerFault(GossipError):
    """The peer broke the protocol or sent something forged: it earns a strike."""


class GossipNode:
    def __init__(
        self,
        identity: NodeIdentity,
        certificates: DeviceCertificates,
        server_context: ssl.SSLContext,
        client_context: ssl.SSLContext,
        store: GossipStore,
        members: SiteMembers,
        files: TrustedFiles | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.identity = identity
        self.certificates = certificates
        self._server_context = server_context
        self._client_context = client_context
        self.store = store
        self.members = members
        self.files = files
        self.rng = rng or random.Random()
        self.traffic = Traffic()
        self._limiter = trio.CapacityLimiter(MAX_CONCURRENT_CONVERSATIONS)

    @property
    def device_id(self) -> str:
        return self.identity.device.device_id

    # -- own records --------------------------------------------------------------

    def publish(self, kind: RecordKind, key: str, body: str) -> GossipRecord:
        """Sign and store a record of this device (a new version of `key`)."""
        record = GossipRecord.sign(
            self.device_id, self.store.next_version(self.device_id), kind, key, body,
            self.identity.private_key,
        )
        self.store.put(record, self.identity.certificate_der)
        return record

    # -- server -------------------------------------------------------------------

    async def serve(
        self, host: str, port: int,
        *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Accept peers until cancelled; `task_status` gets the bound IP:PORT."""
        with naming_listen_address(f"{host}:{port}", "[gossip] listen in agent.toml"):
            listeners = await trio.open_tcp_listeners(port, host=host or None)
        bound_host, bound_port = listeners[0].socket.getsockname()[:2]
        self.members.own_address = f"{host or bound_host}:{bound_port}"
        async with trio.open_nursery() as nursery:
            task_status.started(self.members.own_address)
            await trio.serve_listeners(self._handle, listeners, handler_nursery=nursery)

    async def _handle(self, tcp: trio.SocketStream) -> None:
        try:
            host, port = tcp.socket.getpeername()[:2]
            address = f"{host}:{port}"
        except OSError:
            address = "?"
        async with self._limiter:
            stream = trio.SSLStream(CountingStream(tcp, self.traffic), self._server_context,
                                    server_side=True)
            peer: DeviceCertificate | None = None
            try:
                with trio.fail_after(EXCHANGE_TIMEOUT):
                    await stream.do_handshake()
                    peer = peer_certificate(stream)
                    if self.members.is_banned(device_id=peer.device_id):
                        log.info("gossip: closed connection of penalised %s", peer.device_id)
                        return
                    await self._answer(FramedStream(stream, f"{peer.device_id}@{address}"),
                                       peer)
            except (_PeerFault, MalformedFrameError) as exc:
                self.members.penalise(peer.device_id if peer else "", str(exc))
            except (AgentError, trio.BrokenResourceError, trio.TooSlowError, OSError) as exc:
                log.info("gossip: conversation with %s ended: %s", address, _why(exc))
            except Exception:
                log.exception("gossip: conversation with %s ended by an unexpected error "
                              "(a bug; the node goes on)", address)
            finally:
                await _close(stream)

    async def _answer(self, framed: FramedStream, peer: DeviceCertificate) -> None:
        first = await framed.receive_message()
        if first.get("type") == "fetch":
            request = _parse(FetchRequest, first, framed.peer)
            data = self.files.read(request.path) if self.files else None
            if data is None or len(data) > MAX_FILE_BYTES:
                await framed.send_message(FileAnswer(status=404))
                return
            await framed.send_message(FileAnswer(status=200, length=len(data)))
            await framed.send_frame(data)
            return
        digest = _parse(DigestMessage, first, framed.peer)
        answer = delta_for(self.store, digest.digest, MAX_RECORDS_PER_MESSAGE)
        await framed.send_message(answer.model_copy(update={"digest": self.store.digest()}))
        theirs = _parse(DeltaMessage, await framed.receive_message(), framed.peer)
        outcome = self._merge(theirs, framed.peer, peer)
        await framed.send_message(DoneMessage(accepted=outcome.accepted,
                                              refused=len(outcome.refused)))
        if outcome.refused:
            raise _PeerFault(f"sent forged records: {outcome.refused[0]}")

    # -- client -------------------------------------------------------------------

    async def gossip_round(self, fanout: int = 1) -> list[MergeOutcome | None]:
        """Exchange with `fanout` random usable members, concurrently."""
        outcomes: list[MergeOutcome | None] = []

        async def one(address: str) -> None:
            outcomes.append(await self.exchange_with(address))

        async with trio.open_nursery() as nursery:
            for address in self.members.pick(fanout, self.rng):
                nursery.start_soon(one, address)
        return outcomes

    async def exchange_with(self, address: str) -> MergeOutcome | None:
        """Push-pull with one peer; None if the conversation failed."""
        seen: list[str] = []  # the device that answered, once the handshake is done
        try:
            async with self._dial(address) as (framed, peer):
                seen.append(peer.device_id)
                await framed.send_message(DigestMessage(digest=self.store.digest()))
                theirs = _parse(DeltaMessage, await framed.receive_message(), framed.peer)
                outcome = self._merge(theirs, framed.peer, peer)
                if theirs.digest is None:
                    raise _PeerFault("answered a digest without its own digest")
                mine = delta_for(self.store, theirs.digest, MAX_RECORDS_PER_MESSAGE)
                await framed.send_message(mine)
                _parse(DoneMessage, await framed.receive_message(), framed.peer)
                if outcome.refused:
                    self.members.penalise(peer.device_id,
                                          f"sent forged records: {outcome.refused[0]}")
                return outcome
        except (_PeerFault, MalformedFrameError) as exc:
            self.members.penalise(seen[0] if seen else "", f"at {address}: {exc}")
        except (AgentError, trio.BrokenResourceError, trio.TooSlowError, OSError) as exc:
            log.info("gossip: exchange with %s failed: %s", address, _why(exc))
        except Exception:
            log.exception("gossip: exchange with %s ended by an unexpected error "
                          "(a bug; the node goes on)", address)
        return None

    async def fetch_file(self, address: str, path: str, limit: int = MAX_FILE_BYTES) -> bytes:
        """A file of a peer's trusted TUF metadata or targets. Raises FileNotFoundError
        if the peer does not hold it, GossipError (or a trio error) if it failed."""
        async with self._dial(address) as (framed, _peer):
            await framed.send_message(FetchRequest(path=path))
            answer = _parse(FileAnswer, await framed.receive_message(), framed.peer)
            if answer.status == 404:
                raise FileNotFoundError(path)
            if answer.status != 200 or answer.length > limit:
                raise GossipError(f"{framed.peer}: answered {path} with status {answer.status}"
                                  f", {answer.length} bytes (limit {limit})")
            return await framed.receive_frame(limit=min(limit, answer.length))

    @asynccontextmanager
    async def _dial(self, address: str) -> AsyncIterator[tuple[FramedStream, DeviceCertificate]]:
        """A TLS connection to a peer, with one deadline for the whole conversation."""
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise GossipError(f"peer address {address!r} is not IP:PORT")
        with trio.fail_after(EXCHANGE_TIMEOUT):
            tcp = await trio.open_tcp_stream(host.strip("[]"), int(port))
            stream = trio.SSLStream(CountingStream(tcp, self.traffic), self._client_context,
                                    server_side=False)
            try:
                await stream.do_handshake()
                peer = peer_certificate(stream)
                self.members.bind(address, peer.device_id)
                if self.members.is_banned(device_id=peer.device_id):
                    raise GossipError(f"{peer.device_id} at {address} is penalised")
                yield FramedStream(stream, f"{peer.device_id}@{address}"), peer
            finally:
                await _close(stream)

    def _merge(self, delta: DeltaMessage, sender: str, peer: DeviceCertificate) -> MergeOutcome:
        outcome = merge_delta(self.store, delta, self.certificates, sender, peer.device_id,
                              peer.der)
        if outcome.accepted:
            self.learn_members()
        return outcome

    def learn_members(self) -> None:
        for record in self.store.records("inventory"):
            der = self.store.certificate(record.origin)
            if der is None:
                continue
            try:
                device = self.certificates.verify(der)
                self.members.learn(device.device_id, Inventory.model_validate_json(record.body))
            except Exception:  # noqa: BLE001 - a stored record must never stop the node
                log.debug("inventory of %s not taken", record.origin, exc_info=True)
                continue


def _parse(model: type[ModelT], message: dict[str, Any], peer: str) -> ModelT:
    return parse_model(model, message, f"gossip message from {peer}", _PeerFault)


async def _close(stream: trio.SSLStream[Any]) -> None:
    with trio.move_on_after(1, shield=True), contextlib.suppress(
        trio.BrokenResourceError, trio.ClosedResourceError, OSError
    ):
        await stream.aclose()


def _why(exc: BaseException) -> str:
    cause = exc.__cause__ or exc.__context__
    text = str(exc) or type(exc).__name__
    if isinstance(cause, ssl.SSLError | OSError):
        text += f" ({cause})"
    return text
