"""What a fleet's heartbeats cost the hub (hub/devices/presence.py), per heartbeat.

Baseline: recording each heartbeat as it comes, one transaction (one fsync) per device,
as `HubDatabase.touch_device` does. Measured: what the hub does instead, the device's
key read and its Ed25519 signature checked per heartbeat, then every time written in
one transaction (`LastSeenBatch`); and the verify step alone. Real SQLite (WAL,
synchronous=FULL) in a temporary directory; no HTTP, which costs the same either way.
"""

from __future__ import annotations

import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import trio

from agent.device_identity import DeviceIdentity
from agent.wire.heartbeat import Heartbeat, SignedHeartbeat
from hub.database import HubDatabase
from hub.devices.presence import LastSeenBatch

DEVICES = 300


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        database = HubDatabase.create(work / "hub.db")
        now = datetime.now(UTC)
        beats = []
        with database.transaction() as db:
            for number in range(DEVICES):
                identity = DeviceIdentity.load_or_create(work / f"{number}.key")
                db.execute("INSERT INTO devices (device_id, public_key, name, hostname, grp, "
                           "site, labels, status, enrolled_at) VALUES (?, ?, ?, 'h', 'lab', "
                           "'s', '{}', 'accepted', ?)", (identity.device_id,
                                                         identity.public_key_raw, f"n{number}",
                                                         now.isoformat()))
                beats.append(SignedHeartbeat.sign(
                    Heartbeat(device_id=identity.device_id,
                              issued_at=now.isoformat(timespec="seconds")),
                    identity.private_key))

        started = time.perf_counter()
        for beat in beats:
            database.touch_device(beat.heartbeat.device_id)
        baseline = time.perf_counter() - started

        batch = LastSeenBatch(work / "hub.db")
        started = time.perf_counter()
        issued = [batch.verify(database, beat, now) for beat in beats]
        verified = time.perf_counter() - started
        for beat, when in zip(beats, issued, strict=True):
            batch.note(beat.heartbeat.device_id, when, now)
        written = trio.run(batch.flush)
        batched = time.perf_counter() - started

        # As the route does it: a connection of its own per heartbeat (a worker thread).
        again = LastSeenBatch(work / "hub.db")
        started = time.perf_counter()
        for beat in beats:
            own = HubDatabase(work / "hub.db")
            try:
                again.verify(own, beat, now)
            finally:
                own.close()
        per_connection = time.perf_counter() - started
        database.close()
    assert written == DEVICES
    print(f"{DEVICES} heartbeats, per heartbeat")
    print(f"  baseline: one transaction each (touch_device)  "
          f"{baseline / DEVICES * 1e6:8.0f} us   1.00x")
    print(f"  verify (key read + Ed25519) + one batch write  "
          f"{batched / DEVICES * 1e6:8.0f} us   {batched / baseline:4.2f}x")
    print(f"  of which verify alone                          "
          f"{verified / DEVICES * 1e6:8.0f} us   {verified / baseline:4.2f}x")
    print(f"  verify opening a connection each (the route)   "
          f"{per_connection / DEVICES * 1e6:8.0f} us   {per_connection / baseline:4.2f}x")


if __name__ == "__main__":
    main()
