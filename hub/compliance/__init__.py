"""Compliance: did each device install each release within its group's deadline?

Others use: `facts` (the plain data a report is computed from), `report.compute_report`
(pure: the same function the hub, the evidence verifier and a simulation run),
`gather.gather_facts` (the facts from a hub database), `exceptions` (admin exceptions
with a reason and an expiry), `over_time.compliance_over_time` (the console's charts),
`render` (table rows, CSV, JSON), `document` (the printable HTML and PDF).
"""
