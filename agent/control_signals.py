"""The daemon's control-window task: while a rollout of a release declaring `[signals]`
is active and this device is not in its current stage, measure the release's signals
over one window (`window_seconds`) each `control_interval` and post it, signed, to the
hub (agent/wire/control_signals.py): the concurrent control the hub compares the
updated devices with (hub/rollouts/concurrent_control.py).

Cheap by design: the daemon tells it, at each metadata refresh, which releases this
device is a control of (`agent.rollout_selection.control_releases`); with none it
sleeps until told otherwise. A window costs two samples (a `systemctl show` per unit,
one process scan; psutil is imported only then, as for the install's windows) and one
small POST. A window is dropped, never sent, when the device stopped being a control
while it ran (its stage came: that window overlaps its install). One that cannot be
measured or sent is logged and the next comes at the next interval: control windows
never hold anything up.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable

import trio
import urllib3

from agent.device_identity import DeviceIdentity
from agent.health_signals import measure_window
from agent.hub_client import post_json
from agent.wire.control_signals import ControlWindow, SignedControlWindow
from agent.wire.health_signals import SignalWindow
from agent.wire.release import SignalsSpec

log = logging.getLogger(__name__)

Measure = Callable[[SignalsSpec], Awaitable[SignalWindow]]


class ControlSignalSender:
    def __init__(self, hub_url: str, identity: DeviceIdentity, timeout: float = 30.0,
                 measure: Measure = measure_window) -> None:
        self.hub_url = hub_url.rstrip("/")
        self.identity = identity
        self.timeout = timeout
        self.measure = measure
        self.wanted: dict[str, SignalsSpec] = {}
        self.next_due: dict[str, float] = {}
        self.sent = 0
        self._changed = trio.Event()

    def update(self, wanted: dict[str, SignalsSpec]) -> None:
        """The releases this device is a control of now (the daemon, each refresh)."""
        if wanted != self.wanted:
            self.wanted = dict(wanted)
            self.next_due = {r: t for r, t in self.next_due.items() if r in wanted}
            self._changed.set()

    async def send_due(self) -> None:
        """Measure and post a window of every wanted release that is due (one by one:
        few releases, and windows of one device need not run side by side)."""
        for release, spec in sorted(self.wanted.items()):
            if self.next_due.get(release, -math.inf) > trio.current_time():
                continue
            started = trio.current_time()
            self.next_due[release] = started + max(spec.control_interval,
                                                   spec.window_seconds)
            try:
                window = await self.measure(spec)
            except Exception:  # noqa: BLE001 - a window that fails is only a missing one
                log.exception("%s: control window could not be measured", release)
                continue
            if self.wanted.get(release) != spec:
                log.info("%s: control window dropped: this device is no control of it now",
                         release)
                continue
            await self._post(release, window)

    async def _post(self, release: str, window: SignalWindow) -> None:
        record = ControlWindow(device_id=self.identity.device_id, release=release,
                               window=window)
        body = SignedControlWindow.sign(record, self.identity.private_key).to_bytes()
        url = f"{self.hub_url}/api/v1/control-signals"
        try:
            status, answer = await trio.to_thread.run_sync(
                post_json, url, body, self.timeout, 300, abandon_on_cancel=True)
        except urllib3.exceptions.HTTPError as exc:
            log.info("%s: control window not sent (hub unreachable: %s)", release,
                     exc or type(exc).__name__)
            return
        if status in (200, 201):
            self.sent += 1
        else:
            log.warning("%s: hub refused a control window (HTTP %d): %s", release, status,
                        answer.decode("utf-8", "replace"))

    async def run(self) -> None:
        while True:
            self._changed = trio.Event()  # an update while windows run wakes the wait
            await self.send_due()
            upcoming = [self.next_due.get(r, 0.0) for r in self.wanted]
            with trio.move_on_at(min(upcoming) if upcoming else math.inf):
                await self._changed.wait()
