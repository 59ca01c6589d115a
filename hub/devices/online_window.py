"""The hub's one notion of a device being online, shared by the console, /metrics and
the compliance report so the three never disagree about the same device.

A device's contact is what it signs: heartbeats, results, enrollment
(hub/devices/presence.py). Its static-file polls name no device and may not reach the
hub at all (a mirror or proxy can serve them), so a healthy idle agent is heard from
only at its heartbeat, every 900 s by default with 10 % jitter. Two heartbeats' worth
of silence is the shortest window in which such an agent is never called offline; a
hub whose agents beat more or less often sets `[metrics] online_within`.
"""

ONLINE_WITHIN_SECONDS = 1800.0
