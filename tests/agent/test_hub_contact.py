"""HubContact: what `status` says about the hub, from the outcome of each refresh.

Pure logic over a real journal; the failures are python-tuf's own exception types, as
`MetadataClient` raises them (a refused connection, a 503 from a proxy, a 404, a bad
signature)."""

from __future__ import annotations

import itertools
import json

import pytest
from tuf.api import exceptions as tuf_errors

from agent.errors import MetadataError
from agent.hub_contact import HubContact, RefreshSource, describe_hub, describe_source
from agent.journal import Journal


@pytest.fixture
def contact(tmp_path):
    journal = Journal(tmp_path / "journal.db")
    times = (f"2026-12-02T06:{minute:02d}:00+00:00" for minute in itertools.count())
    yield HubContact(journal, clock=lambda: next(times))
    journal.close()


def failure(cause: Exception) -> MetadataError:
    try:
        raise MetadataError("refreshing metadata: ...") from cause
    except MetadataError as exc:
        return exc


def test_unreachable_since_is_the_first_failure_and_survives_until_the_hub_answers(contact):
    contact.refreshed(RefreshSource())
    contact.refresh_failed(failure(tuf_errors.SlowRetrievalError("connection refused")))
    contact.refresh_failed(failure(tuf_errors.DownloadHTTPError("bad gateway", 503)))
    state = contact.current()
    assert state["reachable"] is False
    assert state["since"] == "2026-12-02T06:01:00+00:00"
    assert state["last_answer"] == "2026-12-02T06:00:00+00:00"
    assert describe_hub(state).startswith("hub unreachable since 2026-12-02T06:01:00+00:00")
    contact.refreshed(RefreshSource())
    assert contact.current()["reachable"] is True
    assert contact.current()["since"] == "2026-12-02T06:03:00+00:00"


@pytest.mark.parametrize("cause", [tuf_errors.DownloadHTTPError("not found", 404),
                                   tuf_errors.UnsignedMetadataError("bad signature")])
def test_a_refused_answer_is_an_answer_not_an_unreachable_hub(contact, cause):
    contact.refresh_failed(failure(cause))
    assert contact.current()["reachable"] is True


def test_metadata_from_peers_names_them_and_marks_the_hub_unreachable(contact):
    contact.refreshed(RefreshSource(("127.0.0.3:7881",), "connection refused"))
    assert contact.current() | {"since": ""} == {
        "reachable": False, "since": "", "last_answer": None, "error": "connection refused"}
    source = contact.journal.status()["metadata_source"][0]
    assert describe_source(json.loads(source)) == (
        "site peer 127.0.0.3:7881 (hub unreachable), at 2026-12-02T06:00:00+00:00")
