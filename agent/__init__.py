"""Meisitong endpoint agent.

Public face for other packages (the hub imports these): `agent.wire` (formats both
sides speak), `agent.errors`, `agent.atomic_file`, `agent.target_size_caps` (the caps agents fetch
within, so the hub refuses to sign more). Everything else is the agent's own.
"""

__version__ = "0.1.0"
