"""Both daemons' JSON log lines (agent/log_format.py): one object per line with time,
level, logger, message and extra fields, secrets named as such never written."""

from __future__ import annotations

import json
import logging
import os

from agent.log_format import JsonFormatter, formatter_for


def record(message: str, *args: object, level: int = logging.INFO,
           exc_info: object = None, **extra: object) -> logging.LogRecord:
    made = logging.getLogger("agent.test").makeRecord(
        "agent.test", level, __file__, 1, message, args, exc_info, extra=extra)
    return made


def test_a_json_line_holds_time_level_logger_the_formatted_message_and_extras():
    line = JsonFormatter().format(record("cycle %s after %d s", "ok", 3, release="app/1.0",
                                         attempt=2))
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["level"] == "INFO" and entry["logger"] == "agent.test"
    assert entry["message"] == "cycle ok after 3 s"
    assert entry["time"].endswith("+00:00") and "T" in entry["time"]
    assert entry["release"] == "app/1.0" and entry["attempt"] == 2


def test_extras_named_like_secrets_are_written_as_stars_and_base_keys_are_kept():
    entry = json.loads(JsonFormatter().format(record(
        "enrolled", token="mst1.SECRET.abc", hub_key="K", password="p", api_secret="s",
        level_name="x", message_id=1)))
    assert entry["token"] == entry["hub_key"] == entry["password"] == entry["api_secret"] \
        == "***"
    assert "SECRET" not in json.dumps(entry)
    assert entry["message"] == "enrolled"
    assert entry["message_id"] == 1


def test_a_multiline_message_and_a_traceback_stay_on_one_line():
    try:
        raise ValueError("bad\nthing")
    except ValueError:
        import sys
        made = record("failed:\n%s", "two lines", level=logging.ERROR, exc_info=sys.exc_info())
    line = JsonFormatter().format(made)
    assert len(line.splitlines()) == 1
    entry = json.loads(line)
    assert entry["message"] == "failed:\ntwo lines"
    assert "ValueError: bad" in entry["exception"]


def test_values_json_cannot_encode_are_written_as_text():
    entry = json.loads(JsonFormatter().format(record("x", where=object(), raw=b"\x00")))
    assert entry["where"].startswith("<object") and entry["raw"] == "b'\\x00'"


def test_text_stays_the_default_format():
    assert not isinstance(formatter_for("text"), JsonFormatter)
    assert isinstance(formatter_for("json"), JsonFormatter)


def test_under_the_journal_text_lines_carry_a_priority_and_no_time_stamp(tmp_path,
                                                                         monkeypatch):
    from agent.log_format import JournalFormatter, stderr_is_journal

    with open(tmp_path / "stream", "w") as stream:
        status = os.fstat(stream.fileno())
        assert stderr_is_journal({"JOURNAL_STREAM": f"{status.st_dev}:{status.st_ino}"},
                                 stream)
        # Inherited by a child whose stderr went elsewhere: not the journal.
        assert not stderr_is_journal({"JOURNAL_STREAM": f"{status.st_dev}:1"}, stream)
        assert not stderr_is_journal({"JOURNAL_STREAM": "junk"}, stream)
        assert not stderr_is_journal({}, stream)
        monkeypatch.setenv("JOURNAL_STREAM", f"{status.st_dev}:{status.st_ino}")
        monkeypatch.setattr("sys.stderr", stream)
        assert isinstance(formatter_for("text"), JournalFormatter)
        assert isinstance(formatter_for("json"), JsonFormatter)
    line = JournalFormatter().format(record("disk %s low", "/var", level=logging.WARNING))
    assert line == "<4>WARNING agent.test: disk /var low"
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        failed = JournalFormatter().format(record("failed", level=logging.ERROR,
                                                  exc_info=sys.exc_info()))
    assert all(part.startswith("<3>") for part in failed.split("\n"))
    assert "ValueError: boom" in failed


def test_outside_the_journal_text_lines_keep_their_time_stamp(monkeypatch):
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    formatter = formatter_for("text")
    assert formatter._fmt is not None and formatter._fmt.startswith("%(asctime)s")
