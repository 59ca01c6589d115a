"""The hub's part of the BitTorrent swarm: tracker (state, wire format, HTTP), the
seeder, torrent making, and which peers a site is given.

Others use: `tracker.Swarms`, `tracker_http` routes, `seeder.HubSeeder`,
`torrent_maker.make_hybrid_torrent`, `site_peers` (DeviceSites, SitePeerSelector).
"""
