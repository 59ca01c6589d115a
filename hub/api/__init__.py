"""The hub's HTTP application: metadata and payload files, the device API (enroll,
results, leases, relayed batches) and the tracker routes, with bounded request bodies.

Others use: `web_app.make_app`, `web_app.CountingFiles`, `request_body.read_body`, and
`error_statuses.api_route` for every route (one table maps errors to HTTP statuses).
"""
