"""`make bench`: run every tests/bench/bench_*.py as its own process, one after another.

Each benchmark prints its own table of ratios against a baseline it measures in the same
run (these machines are shared and noisy: absolute times mean little, ratios travel).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def main() -> None:
    here = Path(__file__).parent
    failed = []
    selected = sys.argv[1:]
    for script in sorted(here.glob("bench_*.py")):
        if selected and not any(name in script.stem for name in selected):
            continue
        print(f"\n=== {script.stem}", flush=True)
        module = f"tests.bench.{script.stem}"
        if subprocess.run([sys.executable, "-m", module], check=False).returncode != 0:
            failed.append(script.stem)
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
        sys.exit(1)


if __name__ == "__main__":
    main()
