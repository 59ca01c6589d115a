"""Reading feed files: an OSV record, a list of them, the Debian tracker's export, or a
directory holding any of these (every `*.json` below it, in name order).

Everything named is read and validated before anything is stored (the store takes the
whole list in one transaction), so a bad file anywhere means nothing of the import is
applied; the error names the file and the record.
"""

from __future__ import annotations

import json
from pathlib import Path

from hub.errors import VulnFeedError
from hub.vulns.advisories import Advisory
from hub.vulns.debian_tracker import looks_like_tracker, parse_tracker
from hub.vulns.osv_records import parse_osv_record


def feed_files(paths: list[Path]) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            inside = sorted(item for item in path.rglob("*.json") if item.is_file())
            if not inside:
                raise VulnFeedError(f"{path}: a directory without any .json file")
            found += inside
        elif path.is_file():
            found.append(path)
        else:
            raise VulnFeedError(f"{path}: no such file or directory")
    return found


def read_feed_file(path: Path) -> list[Advisory]:
    try:
        data = json.loads(path.read_bytes())
    except OSError as exc:
        raise VulnFeedError(f"{path}: cannot read: {exc.strerror}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise VulnFeedError(f"{path}: not JSON: {exc}") from None
    if isinstance(data, list):
        advisories = [parse_osv_record(item, f"{path}: [{index}]")
                      for index, item in enumerate(data)]
    elif looks_like_tracker(data):
        advisories = parse_tracker(data, str(path))
    elif isinstance(data, dict):
        advisories = [parse_osv_record(data, str(path))]
    else:
        raise VulnFeedError(f"{path}: neither an OSV record, a list of them, nor the Debian "
                            "security tracker's JSON")
    return [_from(advisory, path) for advisory in advisories]


def _from(advisory: Advisory, path: Path) -> Advisory:
    from dataclasses import replace

    return replace(advisory, source_file=str(path))


def read_feeds(paths: list[Path]) -> list[Advisory]:
    advisories: list[Advisory] = []
    for path in feed_files(paths):
        advisories += read_feed_file(path)
    return advisories
