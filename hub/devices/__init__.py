"""Devices at the hub: enrollment and tokens (`enrollment`), the device CA
(`certificate_authority`), and results as devices sign them, direct or relayed by site
peers (`results_store`, `results_identity`, `relayed_results`).
"""
