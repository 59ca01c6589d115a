"""The tracker's HTTP endpoints (hub/swarm/tracker_http.py) over ASGI: only published releases'
swarms, a failure reason for any other, scrape (BEP 48), and published releases read
from a real hub database."""

from __future__ import annotations

from urllib.parse import quote_from_bytes

import httpx
import libtorrent as lt
import trio
from starlette.applications import Starlette

from hub.database import HubDatabase
from hub.releases.published_releases import PublishedReleases, read_published
from hub.swarm.tracker import Swarms
from hub.swarm.tracker_http import tracker_routes

V1 = b"\x11" * 20
V2_TRUNCATED = b"\x22" * 20
UNPUBLISHED = b"\x33" * 20


def announce_url(info_hash: bytes, n: int, **params: object) -> str:
    pid = b"-MA0001-" + f"{n:012d}".encode()
    fields = {"port": 6881, "left": 100, **params}
    text = "&".join(f"{k}={v}" for k, v in fields.items())
    hashes = f"info_hash={quote_from_bytes(info_hash)}&peer_id={quote_from_bytes(pid)}"
    return f"/announce?{hashes}&{text}"


def client(swarms: Swarms, published: PublishedReleases, ip: str = "10.0.0.5") -> httpx.AsyncClient:
    app = Starlette(routes=tracker_routes(swarms, published))
    transport = httpx.ASGITransport(app=app, client=(ip, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://hub")


async def test_unpublished_info_hash_gets_a_failure_reason_and_is_not_tracked():
    swarms = Swarms()
    published = PublishedReleases.fixed({V1: V1, V2_TRUNCATED: V1})
    async with client(swarms, published) as http:
        answer = await http.get(announce_url(UNPUBLISHED, 1))
        ok = await http.get(announce_url(V2_TRUNCATED, 1))
    assert answer.status_code == 200
    reason = lt.bdecode(answer.content)[b"failure reason"]
    assert reason == f"info_hash {UNPUBLISHED.hex()} is no release this hub published".encode()
    assert swarms.info_hashes() == [V2_TRUNCATED]
    assert b"failure reason" not in lt.bdecode(ok.content)


async def test_scrape_counts_seeds_leechers_and_completions_of_published_swarms_only():
    swarms = Swarms(interval=30)
    published = PublishedReleases.fixed({V1: V1, V2_TRUNCATED: V1})
    async with client(swarms, published) as http:
        await http.get(announce_url(V1, 1, left=0))
        await http.get(announce_url(V1, 2))
        await http.get(announce_url(V1, 3, left=0, event="completed"))
        asked_for = (V1, V2_TRUNCATED, UNPUBLISHED)
        hashes = "&".join(f"info_hash={quote_from_bytes(h)}" for h in asked_for)
        asked = lt.bdecode((await http.get(f"/scrape?{hashes}")).content)
        everything = lt.bdecode((await http.get("/scrape")).content)
        bad = lt.bdecode((await http.get("/scrape?info_hash=short")).content)
    assert asked[b"files"] == {
        V1: {b"complete": 2, b"incomplete": 1, b"downloaded": 1},
        V2_TRUNCATED: {b"complete": 0, b"incomplete": 0, b"downloaded": 0},
    }
    assert asked[b"flags"] == {b"min_request_interval": 30}
    assert list(everything[b"files"]) == [V1]
    assert bad == {b"failure reason": b"info_hash is 5 bytes, not 20"}


async def test_published_releases_come_from_the_releases_table_both_hashes(tmp_path):
    database = HubDatabase.create(tmp_path / "hub.sqlite")
    with database.transaction() as db:
        db.execute(
            "INSERT INTO releases (target, name, version, severity, category, length, sha256,"
            " torrent_target, info_hash_v1, info_hash_v2, published_at) VALUES "
            "('releases/app/1.0.0/app.tar', 'app', '1.0.0', 'low', 'x', 1, 'ab',"
            " 'releases/app/1.0.0/app.tar.torrent', ?, ?, 'now')",
            (V1.hex(), (V2_TRUNCATED + b"\x99" * 12).hex()),
        )
    database.close()
    published = read_published(tmp_path / "hub.sqlite")
    assert published.releases == {V1: V1, V2_TRUNCATED: V1}
    assert published.targets == frozenset({"releases/app/1.0.0/app.tar"})


async def test_a_release_found_is_cached_one_not_found_is_read_again_after_the_question():
    reads = []
    now = [0.0]

    def read():
        reads.append(now[0])
        from hub.releases.published_releases import PublishedSet
        return PublishedSet(frozenset(), {V1: V1} if now[0] >= 0.5 else {})

    published = PublishedReleases(read, max_age=1.0, clock=lambda: now[0])
    assert await published.release_of(V1) is None  # read, and read-after: same instant
    assert reads == [0.0]
    now[0] = 0.5  # published meanwhile: a question now must see it, not wait for max_age
    assert await published.release_of(V1) == V1
    now[0] = 1.2
    assert await published.release_of(V1) == V1  # found: cached
    assert reads == [0.0, 0.5]


async def test_a_payload_published_a_moment_ago_is_served_at_once(tmp_path):
    """The web seed's question right after `publish` returned: no 404 window."""
    from hub.releases.published_releases import read_published

    database = HubDatabase.create(tmp_path / "hub.sqlite")
    published = PublishedReleases.from_database(tmp_path / "hub.sqlite", max_age=3600)
    assert not await published.is_published_target("releases/app/1.0.0/app.tar")
    with database.transaction() as db:
        db.execute(
            "INSERT INTO releases (target, name, version, severity, category, length, sha256,"
            " torrent_target, info_hash_v1, info_hash_v2, published_at) VALUES "
            "('releases/app/1.0.0/app.tar', 'app', '1.0.0', 'moderate', 'application', 1,"
            " 'x', 't', ?, ?, 'now')", (V1.hex(), "ab" * 32))
    database.close()
    assert await published.is_published_target("releases/app/1.0.0/app.tar")
    assert read_published(tmp_path / "hub.sqlite").targets


async def test_questions_for_unknown_swarms_do_not_hold_up_published_ones(mock_clock):
    """A flood of unknown info-hashes waits for its own re-reads (at most every 50 ms);
    a published swarm's question is answered from the cache meanwhile."""
    from hub.releases.published_releases import PublishedSet

    # Mock time jumps only once every task has waited 0.2 s of real time: never while
    # a read runs in its worker thread, so the reads happen when the test says.
    mock_clock.autojump_threshold = 0.2

    reads: list[float] = []

    def read() -> PublishedSet:
        reads.append(trio.from_thread.run_sync(trio.current_time))  # runs in a worker
        return PublishedSet(frozenset(), {V1: V1})

    published = PublishedReleases(read, max_age=3600, clock=trio.current_time)
    assert await published.release_of(V1) == V1
    await trio.sleep(1)  # the unknown swarms are asked about after that read
    answered_at: list[float] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(published.release_of, b"\xff" * 20)  # re-read at once
        await trio.sleep(0.01)
        for n in range(20):  # asked within 50 ms of that read: they wait for the next
            nursery.start_soon(published.release_of, bytes([n]) * 20)
        await trio.sleep(0.02)  # they wait for their re-read now
        started = trio.current_time()
        assert await published.release_of(V1) == V1
        answered_at.append(trio.current_time() - started)
    assert answered_at == [0.0]
    assert len(reads) == 3  # the first read, the first miss's, one for the 20 after it
