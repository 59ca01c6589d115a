"""Snapshot and revert of a 1 GiB tree: file copy vs reflink vs btrfs subvolume snapshot.

Each backend runs on its own loop-mounted filesystem made here (4 GiB sparse images):
ext4 (no reflink: the file-tree snapshot copies), xfs and btrfs (FICLONE: the file-tree
snapshot clones extents), and btrfs with the install root as a subvolume (the btrfs
backend). The "install" rewrites every file of the tree, so the revert has to put the
whole 1 GiB back: the worst case. Times include the syncfs each step ends with. Ratios
are against the ext4 copy measured in the same run.

    python -m tests.bench.bench_snapshot [--mib 1024] [--files 256]

Needs root (mount, losetup) and mkfs.xfs / mkfs.btrfs (xfsprogs, btrfs-progs).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from agent.snapshots import BtrfsSnapshot, FileTreeSnapshot, SnapshotBackend


def run(*argv: str) -> None:
    subprocess.run(list(argv), check=True, capture_output=True, timeout=600)


def make_tree(root: Path, total_mib: int, files: int) -> None:
    chunk = os.urandom(1 << 20)
    per_file = max(1, total_mib // files)
    for index in range(files):
        path = root / f"d{index % 16:02d}" / f"f{index:04d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as out:
            for _ in range(per_file):
                out.write(chunk)
    run("sync")


def rewrite_tree(root: Path) -> None:
    """The 'install': every file replaced by new content of the same size."""
    for path in sorted(root.rglob("*.bin")):
        size = path.stat().st_size
        path.unlink()
        with open(path, "wb") as out:
            out.write(b"\x01" * size)
    run("sync")


def measure(fstype: str, backend_name: str, workdir: Path, mib: int, files: int) -> dict:
    image, mnt = workdir / f"{fstype}-{backend_name}.img", workdir / f"mnt-{fstype}-{backend_name}"
    mnt.mkdir()
    run("truncate", "-s", "4G", str(image))
    run(f"mkfs.{fstype}", "-q", *(["-F"] if fstype == "ext4" else ["-f"]), str(image))
    run("mount", "-o", "loop", str(image), str(mnt))
    try:
        root = mnt / "app"
        if backend_name == "btrfs":
            run("btrfs", "subvolume", "create", str(root))
        else:
            root.mkdir()
        make_tree(root, mib, files)
        backend: SnapshotBackend = BtrfsSnapshot(root) if backend_name == "btrfs" \
            else FileTreeSnapshot()
        run("sh", "-c", "echo 3 > /proc/sys/vm/drop_caches")
        started = time.monotonic()
        manifest = backend.take([root], mnt / "store")
        take = time.monotonic() - started
        rewrite_tree(root)
        run("sh", "-c", "echo 3 > /proc/sys/vm/drop_caches")
        started = time.monotonic()
        backend.restore(manifest)
        restore = time.monotonic() - started
        started = time.monotonic()
        backend.verify(manifest)
        verify = time.monotonic() - started
        backend.discard(manifest)
        return {"fs": fstype, "backend": f"{backend.name} ({manifest.copy_method})",
                "take": take, "restore": restore, "verify": verify}
    finally:
        subprocess.run(["umount", str(mnt)], check=False)
        image.unlink(missing_ok=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=1024)
    parser.add_argument("--files", type=int, default=256)
    args = parser.parse_args()
    missing = [tool for tool in ("mkfs.xfs", "mkfs.btrfs", "btrfs") if not shutil.which(tool)]
    if os.geteuid() != 0 or missing:
        print(f"skipped: needs root and {', '.join(missing) or 'mount'}")
        return
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-snapshot-", dir="/var/tmp") as tmp:
        for fstype, backend in (("ext4", "file-tree"), ("xfs", "file-tree"),
                                ("btrfs", "file-tree"), ("btrfs", "btrfs")):
            rows.append(measure(fstype, backend, Path(tmp), args.mib, args.files))
    base = rows[0]
    print(f"{args.mib} MiB in {args.files} files; the install rewrites all of it; "
          "ratios against the ext4 copy")
    print(f"{'filesystem':<10} {'backend':<22} {'snapshot s':>10} {'ratio':>7} "
          f"{'revert s':>9} {'ratio':>7} {'verify s':>9}")
    for row in rows:
        print(f"{row['fs']:<10} {row['backend']:<22} {row['take']:>10.2f} "
              f"{row['take'] / base['take']:>7.3f} {row['restore']:>9.2f} "
              f"{row['restore'] / base['restore']:>7.3f} {row['verify']:>9.2f}")


if __name__ == "__main__":
    main()
