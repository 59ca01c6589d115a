"""The console's data over a real hub database: per-stage state counts of a rollout
(hub/console/rollout_progress.py), the fleet overview and its alerts
(hub/console/fleet_overview.py), the live watcher's one computation per change whatever
the number of viewers (hub/console/live.py), and the server-side SVG charts."""

from __future__ import annotations

import sqlite3
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import trio

from agent.rollout_selection import rollout_bucket
from agent.wire.rollout import RolloutState
from hub.console.fleet_overview import fleet_overview
from hub.console.live import LiveRollouts
from hub.console.rollout_progress import device_states, rollout_progress
from hub.console.svg_chart import Series, line_chart
from hub.database import HubDatabase
from hub.rollouts.rules import RolloutPlan, RolloutRules
from hub.rollouts.store import RolloutRecord, ensure_rollout_schema, iso, write_rollout

RELEASE = "releases/app/1.0.0/app.tar"
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def make_database(tmp_path, devices: int = 40) -> HubDatabase:
    database = HubDatabase.create(tmp_path / "hub.db")
    ensure_rollout_schema(database)
    with database.transaction() as db:
        for n in range(devices):
            db.execute(
                "INSERT INTO devices (device_id, public_key, name, hostname, grp, site, status,"
                " enrolled_at, last_seen) VALUES (?, x'00', ?, ?, ?, ?, 'accepted', ?, ?)",
                (f"dev-{n:020x}", f"node{n}", f"node{n}", "lab" if n % 4 else "ops",
                 "north" if n % 2 else "south", iso(NOW), iso(NOW - timedelta(minutes=n * 3))))
        db.execute("INSERT INTO releases (target, name, version, severity, category, length, "
                   "sha256, torrent_target, info_hash_v1, info_hash_v2, published_at) VALUES "
                   "(?, 'app', '1.0.0', 'important', 'application', 1, '', '', ?, '', ?)",
                   (RELEASE, "11" * 20, iso(NOW)))
    return database


def start(database: HubDatabase, stages=(10, 50, 100), current=0) -> RolloutRecord:
    record = RolloutRecord(RELEASE, "lab", RolloutState.ACTIVE,
                           RolloutPlan(stages=stages, rules=RolloutRules(automatic=False)),
                           current, NOW, iso(NOW))
    with database.transaction() as db:
        write_rollout(db, record, NOW)
    return record


def result(database: HubDatabase, device: str, outcome: str, record_id: str = "") -> None:
    with database.transaction() as db:
        db.execute(
            "INSERT INTO results (record_id, device_id, release, outcome, reason, started_at, "
            "finished_at, received_at, body) VALUES (?, ?, ?, ?, 'why', ?, ?, ?, x'00')",
            (record_id or f"{device[-8:]}-{outcome}", device, RELEASE, outcome, iso(NOW),
             iso(NOW), iso(NOW)))


def lab_devices(stage_below: float) -> list[str]:
    return [f"dev-{n:020x}" for n in range(40)
            if n % 4 and rollout_bucket(f"dev-{n:020x}", RELEASE) < stage_below]


def test_every_member_of_a_stage_is_counted_in_exactly_one_state(tmp_path):
    database = make_database(tmp_path)
    record = start(database)
    first = lab_devices(10)
    later = [d for d in lab_devices(50) if d not in first]
    assert first and len(later) >= 6
    result(database, later[0], "installed")
    result(database, later[1], "failed")
    result(database, later[1], "not-ready", "later-not-ready")  # a failure outranks it
    result(database, later[2], "not-ready")
    result(database, later[3], "reverted")
    result(database, later[3], "installed", "then-installed")  # latest counted one wins
    result(database, later[4], "revert-failed")
    in_swarm = {later[5]: 1000, first[0]: 0, later[0]: 0}
    with database.transaction() as db:
        progress = rollout_progress(db, record, in_swarm)
    stage = progress["stages"][1]
    assert stage["members"] == len(later)
    counts = {k: v for k, v in stage["counts"].items() if v}
    assert counts == {"installed": 2, "failed": 1, "not-ready": 1, "revert-failed": 1,
                      "downloading": 1, "pending": len(later) - 6}
    assert progress["stages"][0]["counts"]["downloaded"] == 1  # in the swarm, no result
    assert sum(s["members"] for s in progress["stages"]) == 30  # the lab group
    assert progress["outside_stages"] == 0 and progress["stages"][0]["current"]


def test_results_set_aside_by_a_resume_after_a_halt_leave_their_devices_out(tmp_path):
    database = make_database(tmp_path)
    first = lab_devices(50)
    result(database, first[0], "failed")
    record = start(database, stages=(50, 100)).changed(evidence_after=1)
    result(database, first[1], "installed")
    with database.transaction() as db:
        states = device_states(db, record, {})
    assert first[0] not in states and states[first[1]] == (0, "installed")


def test_overview_counts_groups_sites_online_and_alerts(tmp_path):
    database = make_database(tmp_path, devices=8)
    with database.transaction() as db:
        db.execute("UPDATE devices SET last_seen = NULL WHERE name = 'node7'")
        db.execute("UPDATE devices SET status = 'removed' WHERE name = 'node6'")
    result(database, "dev-" + f"{1:020x}", "revert-failed")
    result(database, "dev-" + f"{2:020x}", "not-ready")
    result(database, "dev-" + f"{3:020x}", "not-ready")
    result(database, "dev-" + f"{3:020x}", "installed", "fixed")  # no longer an alert
    with database.transaction() as db:
        overview = fleet_overview(db, NOW, online_seconds=10 * 60)
    assert overview["devices"] == 7 and overview["online"] == 4  # node0..node3 (0-9 min)
    assert overview["groups"]["ops"] == {"devices": 2, "online": 1,  # node4: 12 min
                                         "sites": {"south": 2}}
    assert overview["sites"]["north"] == {"devices": 4, "online": 2}
    assert [a["name"] for a in overview["alerts"]["revert-failed"]] == ["node1"]
    assert [a["name"] for a in overview["alerts"]["not-ready"]] == ["node2"]
    assert [a["name"] for a in overview["alerts"]["stale"]] == ["node4", "node5", "node7"]


async def test_live_progress_is_computed_once_per_change_for_any_number_of_viewers(tmp_path):
    database = make_database(tmp_path)
    start(database)
    live = LiveRollouts(tmp_path / "hub.db", poll_seconds=0.05)
    member = lab_devices(10)[0]
    async with trio.open_nursery() as nursery:
        nursery.start_soon(live.run)
        with live.watch(RELEASE, "lab") as one, live.watch(RELEASE, "lab") as two:
            with trio.fail_after(5):
                first = await one.next()
                assert await two.next() == first
            await trio.sleep(0.3)  # nothing changed: nothing recomputed
            computed = live.recomputed
            assert computed == 1
            other = sqlite3.connect(tmp_path / "hub.db")  # another process's connection
            other.execute(
                "INSERT INTO results (record_id, device_id, release, outcome, reason, "
                "started_at, finished_at, received_at, body) VALUES ('r1', ?, ?, "
                "'installed', '', '', '', '', x'00')", (member, RELEASE))
            other.commit()
            other.close()
            with trio.fail_after(2):
                changed = await one.next()
                assert await two.next() == changed
            assert changed["stages"][0]["counts"]["installed"] == 1
            assert live.recomputed == computed + 1
        assert live.viewers == 0
        nursery.cancel_scope.cancel()


def test_charts_are_svg_with_escaped_labels_and_a_dot_per_point():
    chart = line_chart(
        [Series("lab <script>", [(NOW, 0.5), (NOW + timedelta(days=1), 1.0)]),
         Series("ops", [(NOW, 0.0)])],
        title="Compliance & more", chart_id="compliance-lab")
    root = ET.fromstring(str(chart))
    ns = "{http://www.w3.org/2000/svg}"
    assert root.get("id") == "compliance-lab"
    assert len(root.findall(f".//{ns}circle")) == 3
    assert len(root.findall(f".//{ns}polyline")) == 1  # a single point draws no line
    assert "<script>" not in str(chart) and "lab &lt;script&gt;" in str(chart)
    empty = ET.fromstring(str(line_chart([], title="t", chart_id="c")))
    assert "no data yet" in "".join(empty.itertext())
