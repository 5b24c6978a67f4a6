"""File digests: a full sha256, and a fast one for large files (size + first/last MiB)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

BLOCK = 1 << 20


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(BLOCK), b""):
            h.update(block)
    return h.hexdigest()


def fast_sha256(path: str | Path) -> str:
    """sha256 of the size and the first and last MiB: tells whether a large file changed
    (or was cut) without reading all of it."""
    size = os.stat(path).st_size
    h = hashlib.sha256(str(size).encode())
    with open(path, "rb") as f:
        h.update(f.read(BLOCK))
        if size > 2 * BLOCK:
            f.seek(-BLOCK, os.SEEK_END)
            h.update(f.read(BLOCK))
    return h.hexdigest()
