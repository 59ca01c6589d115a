"""`python -m hub.evidence_verify BUNDLE [--json]`: check an evidence bundle standalone.

Needs only the project's dependencies: no hub database, no hub directory, no network
(hub/evidence/verify.py says what is trusted and why). Exit 0 when everything verifies
and the report recomputes exactly; 1 naming each tampered part (record, chain,
metadata, report); 2 when BUNDLE cannot be read as a bundle.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from hub.errors import EvidenceError
from hub.evidence.bundle import read_bundle
from hub.evidence.verify import verify_bundle


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hub.evidence_verify",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        result = verify_bundle(read_bundle(args.bundle))
    except EvidenceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    seconds = time.perf_counter() - started
    if args.json:
        print(json.dumps({**result.as_dict(), "seconds": round(seconds, 3)}, indent=2))
        return 0 if result.ok else 1
    print(f"root v1 sha256 {result.root_sha256} (compare with the one `init` printed)")
    print(f"{result.records_verified}/{result.records} device-signed records verified, "
          f"{result.audit_entries} audit entries (anchored through "
          f"{result.witnessed_through}, {result.witnesses} device witnesses), "
          f"{result.devices} devices; "
          f"{seconds:.2f} s")
    for note in result.notes:
        print(f"note: {note}")
    if result.ok:
        print("evidence verified: every signature checks and the report recomputes exactly")
        return 0
    print(f"evidence FAILED: tampered or unverifiable: {', '.join(result.failed_parts)}",
          file=sys.stderr)
    for finding in result.findings:
        print(f"  [{finding.part}] {finding.message}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
