"""What an agent daemon imports before it has any work: none of the heavy modules that
only a download, a lease, a health check or enrollment needs (agent/on_demand_peers.py).

Each check runs a fresh interpreter, since this test process has imported everything.
"""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("libtorrent", "httpx", "psutil", "agent.peer_session", "prometheus_client")


def _loaded_after(code: str) -> list[str]:
    probe = f"import sys\n{code}\nprint(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            check=True, timeout=60)
    return result.stdout.split()


def test_the_daemon_and_cli_modules_import_no_libtorrent_httpx_or_psutil() -> None:
    assert _loaded_after("import agent.daemon, agent.cli") == []


def test_posting_a_result_imports_no_httpx() -> None:
    """After its first result a daemon would otherwise carry httpx for good."""
    code = (
        "import trio\n"
        "from agent.hub_client import DeliveryError, HubClient\n"
        "async def main():\n"
        "    try:\n"
        "        await HubClient('http://127.0.0.1:9', timeout=2).post_result(b'{}')\n"
        "    except DeliveryError as exc:\n"
        "        assert 'cannot reach hub http://127.0.0.1:9' in str(exc), exc\n"
        "    else:\n"
        "        raise AssertionError('delivered to nobody')\n"
        "trio.run(main)\n"
    )
    assert _loaded_after(code) == []
