"""Control windows (agent/wire/control_signals.py, hub/rollouts/control_windows.py): the
signed form covers the signals, and the hub, over real HTTP, keeps a not-updated
device's windows of an active rollout per (release, device, window) and refuses the
rest with a 4xx naming why, storing nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.device_identity import DeviceIdentity
from agent.errors import SignatureError, WireFormatError
from agent.wire.control_signals import (
    MAX_CONTROL_BYTES,
    ControlWindow,
    SignedControlWindow,
)
from agent.wire.health_signals import SignalWindow
from agent.wire.release import SignalsSpec
from agent.wire.result import SignedResult
from agent.wire.rollout import RolloutState
from hub.database import HubDatabase
from hub.rollouts.control_windows import MAX_WINDOWS_PER_DEVICE, control_windows
from hub.rollouts.rules import RolloutPlan
from hub.rollouts.store import RolloutRecord, ensure_rollout_schema, write_rollout
from tests.hub.test_device_api import result_for
from tests.hub.test_inventory_api import enrolled

RELEASE = "releases/app/1.0/app.tar"


def window(start: datetime, crashes: int = 2, seconds: float = 300.0) -> SignalWindow:
    return SignalWindow(started_at=start.isoformat(timespec="seconds"), seconds=seconds,
                        restarts=0, crashes=crashes, rss_bytes=90_000_000)


def signed(identity: DeviceIdentity, start: datetime, release: str = RELEASE,
           **changes) -> SignedControlWindow:
    record = ControlWindow(device_id=identity.device_id, release=release,
                           window=window(start, **changes))
    return SignedControlWindow.sign(record, identity.private_key)


def test_the_signature_covers_the_signals_and_the_bytes_round_trip():
    device = DeviceIdentity(Ed25519PrivateKey.generate())
    good = signed(device, datetime(2026, 3, 2, tzinfo=UTC))
    again = SignedControlWindow.from_bytes(good.to_bytes(), "test")
    assert again == good
    again.verify(device.public_key_raw)
    tampered = good.model_copy(update={"record": good.record.model_copy(
        update={"window": good.record.window.model_copy(update={"crashes": 0})})})
    with pytest.raises(SignatureError, match="signature does not verify"):
        tampered.verify(device.public_key_raw)
    other = DeviceIdentity(Ed25519PrivateKey.generate())
    with pytest.raises(SignatureError):
        good.verify(other.public_key_raw)
    with pytest.raises(WireFormatError, match="longer than any"):
        SignedControlWindow.from_bytes(
            signed(device, datetime(2026, 3, 2, tzinfo=UTC), seconds=7200).to_bytes(), "t")
    with pytest.raises(WireFormatError, match="larger than"):
        SignedControlWindow.from_bytes(b" " * (MAX_CONTROL_BYTES + 1), "t")


def test_a_signals_section_without_control_interval_parses_and_dumps_as_before():
    spec = SignalsSpec.model_validate({"units": ["app.service"], "window_seconds": 300})
    assert spec.control_interval == 3600
    with pytest.raises(ValueError, match="control_interval"):
        SignalsSpec.model_validate({"control_interval": 10})
    # The default is left out of the signed release: agents that know [signals] but not
    # control_interval (they refuse unknown keys) still read it.
    assert spec.model_dump(mode="json") == {"units": ["app.service"], "processes": [],
                                            "window_seconds": 300}
    slower = SignalsSpec(window_seconds=300, control_interval=7200)
    assert slower.model_dump(mode="json")["control_interval"] == 7200
    assert SignalsSpec.model_validate(slower.model_dump(mode="json")) == slower


def start_rollout_row(hub_dir, group: str, state: RolloutState = RolloutState.ACTIVE):
    database = HubDatabase(hub_dir.database)
    try:
        ensure_rollout_schema(database)
        now = datetime.now(UTC)
        with database.transaction() as db:
            write_rollout(db, RolloutRecord(RELEASE, group, state,
                                            RolloutPlan(stages=(10, 100)), 0, now,
                                            now.isoformat()), now)
    finally:
        database.close()


def held(hub_dir) -> dict[str, list[SignalWindow]]:
    database = HubDatabase(hub_dir.database)
    try:
        with database.transaction() as db:
            return control_windows(db, RELEASE)
    finally:
        database.close()


async def post(client, body: bytes):
    response = await client.post("/api/v1/control-signals", content=body)
    return response.status_code, response.json()


async def test_a_not_updated_devices_windows_are_kept_once_and_bad_ones_refused(api_hub):
    client, token, hub_dir = api_hub
    device = await enrolled(client, token)
    now = datetime.now(UTC).replace(microsecond=0)
    first = now - timedelta(minutes=20)

    status, answer = await post(client, signed(device, first).to_bytes())
    assert status == 422 and "no active rollout" in answer["error"]
    start_rollout_row(hub_dir, "office")

    status, answer = await post(client, signed(device, first).to_bytes())
    assert (status, answer) == (201, {"stored": True})
    assert (await post(client, signed(device, first).to_bytes()))[0] == 200  # a retry
    overlapping = signed(device, first + timedelta(seconds=120))
    status, answer = await post(client, overlapping.to_bytes())
    assert status == 422 and "overlaps" in answer["error"]
    future = signed(device, now + timedelta(hours=1))
    status, answer = await post(client, future.to_bytes())
    assert status == 422 and "hub's time" in answer["error"]
    old = signed(device, now - timedelta(days=3))
    assert (await post(client, old.to_bytes()))[0] == 422
    second = signed(device, first + timedelta(minutes=6), crashes=5)
    assert (await post(client, second.to_bytes()))[0] == 201

    stranger = DeviceIdentity(Ed25519PrivateKey.generate())
    forged = SignedControlWindow.sign(signed(device, now - timedelta(minutes=5)).record,
                                      stranger.private_key)
    assert (await post(client, forged.to_bytes()))[0] == 403
    assert (await post(client, signed(stranger, first).to_bytes()))[0] == 404
    assert (await post(client, b"{not json"))[0] == 400
    assert (await post(client, b"x" * (MAX_CONTROL_BYTES + 1)))[0] == 413
    other_release = signed(device, now - timedelta(minutes=5), release="releases/x/1/x.tar")
    assert (await post(client, other_release.to_bytes()))[0] == 422

    kept = held(hub_dir)
    assert [w.crashes for w in kept[device.device_id]] == [2, 5]

    # Once it reports installing the release, its windows are the treatment's business.
    response = await client.post("/api/v1/results", content=SignedResult.sign(
        result_for(device), device.private_key).to_bytes())
    assert response.status_code == 201
    status, answer = await post(client, signed(device, now - timedelta(minutes=2)).to_bytes())
    assert status == 422 and "installed" in answer["error"]
    assert len(held(hub_dir)[device.device_id]) == 2


async def test_a_device_has_at_most_its_bound_of_windows_per_release(api_hub, monkeypatch):
    client, token, hub_dir = api_hub
    device = await enrolled(client, token)
    start_rollout_row(hub_dir, "office")
    monkeypatch.setattr("hub.rollouts.control_windows.MAX_WINDOWS_PER_DEVICE", 2)
    assert MAX_WINDOWS_PER_DEVICE >= 1000
    now = datetime.now(UTC).replace(microsecond=0)
    for index in range(2):
        start = now - timedelta(minutes=30 - 6 * index)
        assert (await post(client, signed(device, start).to_bytes()))[0] == 201
    status, answer = await post(client, signed(device, now - timedelta(minutes=6)).to_bytes())
    assert status == 422 and "at most 2" in answer["error"]
    assert len(held(hub_dir)[device.device_id]) == 2


async def test_a_paused_rollout_takes_no_control_windows(api_hub):
    client, token, hub_dir = api_hub
    device = await enrolled(client, token)
    start_rollout_row(hub_dir, "office", RolloutState.PAUSED)
    start = datetime.now(UTC) - timedelta(minutes=10)
    status, answer = await post(client, signed(device, start).to_bytes())
    assert status == 422 and "no active rollout" in answer["error"]
    assert held(hub_dir) == {}


async def test_the_agents_sender_measures_real_windows_and_drops_one_its_stage_overtook(
        api_hub):
    import os

    import psutil
    import trio

    from agent.control_signals import ControlSignalSender
    from agent.health_signals import measure_window

    client, token, hub_dir = api_hub
    device = await enrolled(client, token)
    start_rollout_row(hub_dir, "office")
    spec = SignalsSpec(processes=[psutil.Process(os.getpid()).name()], window_seconds=1)
    sender = ControlSignalSender(str(client.base_url), device, timeout=10)
    sender.update({RELEASE: spec})
    await sender.send_due()
    assert sender.sent == 1
    [kept] = held(hub_dir)[device.device_id]
    assert kept.seconds >= 1 and kept.rss_bytes and kept.rss_bytes > 0
    assert kept.cpu_percent is not None
    await sender.send_due()  # not due again before control_interval
    assert sender.sent == 1

    async def overtaken(measured: SignalsSpec) -> SignalWindow:
        found = await measure_window(measured)
        sender.update({})  # the next refresh: this device is in the stage now
        return found

    sender.measure = overtaken
    sender.next_due.clear()
    sender.update({RELEASE: spec})
    await sender.send_due()
    assert sender.sent == 1 and len(held(hub_dir)[device.device_id]) == 1
    with trio.move_on_after(0.5):
        await sender.run()  # idle with nothing wanted: sleeps, sends nothing
    assert sender.sent == 1
