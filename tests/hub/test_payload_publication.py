"""The hub serves a payload only once its signed target is published: `publish` moves
the file into the payload directory (and links it under /targets/ at its consistent
name) before the release key signs, and a file nothing signed is not handed out. A real
served hub over real HTTP on loopback."""

from __future__ import annotations

import httpx
import trio

from tests.fleet import sha256, start_hub, tar_bytes


async def test_payload_is_404_until_its_release_is_published_then_served(tmp_path, nursery):
    hub = await start_hub(tmp_path, nursery)
    assert hub.server is not None
    payload = tar_bytes({"a.txt": b"signed"})
    target = "releases/app/1.0.0/app-1.0.0.tar"
    hashed = f"releases/app/1.0.0/{sha256(payload)}.app-1.0.0.tar"
    # What `publish` leaves between moving the payload in place and signing its target.
    for early in (hub.hub_dir.payloads / target, hub.hub_dir.targets / hashed):
        early.parent.mkdir(parents=True, exist_ok=True)
        early.write_bytes(payload)
    async with httpx.AsyncClient(base_url=hub.url) as http:
        assert (await http.get(f"/payloads/{target}")).status_code == 404
        assert (await http.get(f"/targets/{hashed}")).status_code == 404
        assert hub.publish("app", "1.0.0", {"a.txt": b"signed"}) == target
        with trio.fail_after(5):  # the releases table is re-read at most once a second
            while (served := await http.get(f"/payloads/{target}")).status_code == 404:
                await trio.sleep(0.2)
        as_target = await http.get(f"/targets/{hashed}")
    assert served.status_code == 200 and served.content == payload
    assert as_target.status_code == 200 and as_target.content == payload
    # The refused request counted nothing against any release.
    assert set(hub.server.app.state.payload_files.sent) == {target}
