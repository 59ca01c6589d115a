"""The import contract `make lint` checks (pyproject.toml, import-linter) stays complete:
it forbids the hub every agent module outside `agent.SHARED_WITH_HUB`, including modules
added to the agent after the contract was written."""

import pkgutil
import tomllib
from pathlib import Path

import agent

PYPROJECT = Path(__file__).parents[1] / "pyproject.toml"


def agent_internals() -> list[str]:
    shared = set(agent.SHARED_WITH_HUB)
    internals: list[str] = []
    for info in sorted(pkgutil.walk_packages(agent.__path__, "agent."), key=lambda i: i.name):
        name = info.name
        if name in shared or any(name.startswith(s + ".") for s in shared if s == "agent.wire"):
            continue
        if any(name.startswith(f + ".") for f in internals):
            continue  # inside a package already forbidden whole
        if any(s.startswith(name + ".") for s in shared):
            continue  # a package with shared modules inside: its other modules are listed
        internals.append(name)
    return internals


def test_the_contract_forbids_the_hub_every_agent_module_not_declared_shared():
    config = tomllib.loads(PYPROJECT.read_text())["tool"]["importlinter"]
    [contract] = config["contracts"]
    assert contract["source_modules"] == ["hub"]
    missing = sorted(set(agent_internals()) - set(contract["forbidden_modules"]))
    assert not missing, (
        f"agent modules {missing} are neither in agent.SHARED_WITH_HUB nor forbidden to the "
        "hub in pyproject.toml [tool.importlinter]: add them to one of the two")
    stale = sorted(set(contract["forbidden_modules"]) - set(agent_internals()))
    assert not stale, f"pyproject.toml forbids modules that no longer exist or are shared: {stale}"
