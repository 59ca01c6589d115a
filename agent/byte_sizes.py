"""Byte counts as people read them in reasons and messages (`2.0 GiB`): one wording for
the disk-space check and readiness requirements, which the hub's prediction repeats."""


def human_size(count: int) -> str:
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"
