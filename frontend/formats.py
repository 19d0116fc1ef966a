"""How every page writes a size: one convention (binary units, as Streamlit's upload caps
count them), so a file is not "600.0 KB" on one page and "585.9 KiB" on the next."""

from __future__ import annotations

_UNITS = (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10))


def size_text(size: int) -> str:
    for unit, scale in _UNITS:
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} bytes"
