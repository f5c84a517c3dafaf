"""Units for people: one byte formatter (decimal units, as disk and RAM are sold: 1 GB =
10⁹ bytes), used by the CLI, the app and the reports alike."""

from __future__ import annotations


def fmt_bytes(n) -> str:
    """'512 B', '12.3 kB'... '1.46 GB'; '?' for None."""
    if n is None:
        return "?"
    n = float(n)
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= scale:
            digits = 2 if unit in ("GB", "TB") else 1
            return f"{n / scale:,.{digits}f} {unit}"
    return f"{n:.0f} B"
