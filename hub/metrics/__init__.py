"""Prometheus metrics of the serving hub: `GET /metrics` (`endpoint`), what is measured
(`hub_metrics`), the database counts read at scrape time (`fleet_state`) and request
latencies per route template (`request_timing`).

Others use: `endpoint.metrics_routes`/`read_bearer_token`, `hub_metrics.HubMetrics`/
`ProcessCounts`, `fleet_state.FleetStateCache`, `request_timing.RequestTiming`.
"""
