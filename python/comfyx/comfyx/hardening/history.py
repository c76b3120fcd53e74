"""The prompt history on disk: one SQLite file, the newest ``size`` entries.

ComfyUI keeps the history in memory only, so every restart loses it. Entries are stored
as the JSON the history API returns. A file that is not a database is moved aside
(``.corrupt-<time>``) and a new one started; one that cannot be opened at all (a
read-only directory) is logged and the history kept in memory only, as ComfyUI does
when its own database fails; a write that fails (a full disk) is logged and the entry
stays in memory. The server goes on in every case.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger("comfyx.hardening")

FILE_NAME = "comfyx-history.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS history (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    prompt_id TEXT NOT NULL UNIQUE,
    entry TEXT NOT NULL
)
"""


def open_store(path: Path, size: int) -> HistoryStore | None:
    """The store at ``path``, or None (logged) where it cannot be opened."""
    try:
        return HistoryStore(path, size)
    except (OSError, sqlite3.Error) as exc:
        log.error("comfyx: cannot open the history database %s (%s); the history is kept in memory only", path, exc)
        return None


class HistoryStore:
    """Thread-safe: the prompt worker saves, HTTP handlers delete."""

    def __init__(self, path: Path, size: int):
        self.path = path
        self.size = size
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = self._open()
        except sqlite3.OperationalError:
            raise  # cannot open or lock it: not the file's fault
        except sqlite3.DatabaseError as exc:
            aside = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
            log.warning("comfyx: %s is not a history database (%s); moved it to %s and started a new one",
                        path, exc, aside)
            path.replace(aside)
            self._db = self._open()

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")  # a write never leaves a half-written file behind
            db.execute(_SCHEMA)
            db.execute("SELECT count(*) FROM history").fetchone()
        except sqlite3.DatabaseError:
            db.close()
            raise
        return db

    def load(self) -> dict[str, dict]:
        """The newest ``size`` entries, oldest first, as ComfyUI's ``PromptQueue.history`` holds them."""
        with self._lock:
            rows = self._db.execute("SELECT prompt_id, entry FROM (SELECT seq, prompt_id, entry FROM history "
                                    "ORDER BY seq DESC LIMIT ?) ORDER BY seq", (self.size,)).fetchall()
        return {prompt_id: json.loads(entry) for prompt_id, entry in rows}

    def save(self, prompt_id: str, entry: dict) -> None:
        """Add (or replace) one entry and drop the oldest beyond ``size``."""
        # default=repr: a custom node's UI output that is not JSON is kept as its repr, not lost
        text = json.dumps(entry, default=repr)
        self._write("save", (
            ("DELETE FROM history WHERE prompt_id = ?", (prompt_id,)),
            ("INSERT INTO history (prompt_id, entry) VALUES (?, ?)", (prompt_id, text)),
            ("DELETE FROM history WHERE seq <= (SELECT seq FROM history ORDER BY seq DESC LIMIT 1 OFFSET ?)",
             (self.size,)),
        ))

    def delete(self, prompt_ids: Iterable[str]) -> None:
        self._write("delete", [("DELETE FROM history WHERE prompt_id = ?", (prompt_id,)) for prompt_id in prompt_ids])

    def clear(self) -> None:
        self._write("clear", (("DELETE FROM history", ()),))

    def _write(self, what: str, statements: Iterable[tuple[str, tuple]]) -> None:
        with self._lock:
            try:
                with self._db:  # one transaction
                    self._db.execute("BEGIN")
                    for sql, parameters in statements:
                        self._db.execute(sql, parameters)
            except sqlite3.Error as exc:
                log.error("comfyx: could not %s history in %s (%s); the entry stays in memory only", what,
                          self.path, exc)
