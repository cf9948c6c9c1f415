"""The daily salts of the embedded store, in a file of their own.

A deleted salt must be gone from every file: that is what makes a visitor hash of a past day
impossible to recompute. DuckDB deletes a row by marking it, and its bytes stay in the
database file's blocks, so the salts live here instead: the whole set is rewritten to a new
file (owner-only) and renamed over the old one, after which no file holds a deleted salt.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path


class SaltFile:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def load_salts(self) -> dict[int, bytes]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        return {int(day): bytes.fromhex(salt) for day, salt in data.items()}

    def save_salt(self, day: int, salt: bytes) -> None:
        with self._lock:
            salts = self.load_salts()
            if day not in salts:
                salts[day] = salt
                self._write(salts)

    def delete_salts_before(self, day: int) -> int:
        with self._lock:
            salts = self.load_salts()
            kept = {d: s for d, s in salts.items() if d >= day}
            if len(kept) != len(salts):
                self._write(kept)
            return len(salts) - len(kept)

    def _write(self, salts: dict[int, bytes]) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, json.dumps({str(d): s.hex() for d, s in sorted(salts.items())}).encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
