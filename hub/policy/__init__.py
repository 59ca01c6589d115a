"""What the admin sets per group and how it is enforced at the hub: signed policies and
group assignments (`policies`), disruption-budget leases (`leases`), and the forecast
of when each group will be done (`forecast`).
"""
