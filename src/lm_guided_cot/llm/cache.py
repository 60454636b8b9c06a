"""A persistent reply cache that several processes (DDP ranks, reruns) share safely.

SQLite in WAL mode: readers never block the writer, and every reply is committed the moment
it arrives, so a batch killed halfway leaves every reply it got behind. Besides replies the
file holds *claims*: a process claims a key before sending it, and any other process that
wants the same key waits for the reply instead of sending it too. A claim lapses when its
lease runs out or its owner (same host) is no longer alive, so a crash never strands a key.

litellm has caches of its own (in memory, Redis, disk), but none coordinates in-flight calls
between processes, which is what keeps two ranks from paying twice for one request.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import sqlite3
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lm_guided_cot.errors import (
    ConfigurationError,
    InputError,
    MissingFileError,
    RunError,
    check_at_least,
)

LOCK_TIMEOUT_ENV = "LMCOT_CACHE_LOCK_TIMEOUT"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS replies (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    text TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    cost REAL NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS claims (
    key TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    expires REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS top_logprobs (
    key TEXT PRIMARY KEY,
    alternatives TEXT NOT NULL
);
"""
# The first token's log-probabilities live in a table of their own rather than in a new
# column of ``replies``: code that predates them checks the columns of ``replies`` and would
# refuse a file whose table had grown one.
_COLUMNS = {
    "replies": (
        "key",
        "model",
        "text",
        "prompt_tokens",
        "completion_tokens",
        "cost",
        "created",
    ),
    "claims": ("key", "owner", "expires"),
    "top_logprobs": ("key", "alternatives"),
}


def cache_key(
    model: str, messages: list[dict[str, Any]], params: dict[str, Any], sample_index: int
) -> str:
    """SHA-256 of what determines a reply: model, messages, sampling and extra parameters, sample index.

    The server address and any credentials are deliberately not part of it.
    """
    payload = json.dumps(
        {"model": model, "messages": messages, "params": params, "sample": sample_index},
        sort_keys=True,
        ensure_ascii=False,
        default=str,
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class CachedReply:
    """A reply as the cache keeps it (``top_logprobs``: the first token's alternatives as
    (token, log-probability) pairs, where the reply had them)."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    cost: float
    top_logprobs: tuple[tuple[str, float], ...] | None = None


class ReplyCache:
    """Replies and in-flight claims in one SQLite file (see the module docstring)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._local = threading.local()
        if self.path.is_dir():
            raise InputError(
                f"{self.path}: cache_path is a folder; name a file in it (such as "
                f"{self.path / 'llm.sqlite'}) or another file as cache_path"
            )
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            if isinstance(err, (FileExistsError, NotADirectoryError)):
                why = f"{err.filename or self.path.parent} is a file, not a folder"
            else:
                why = f"{err.strerror or err}: {err.filename or self.path.parent}"
            raise InputError(
                f"{self.path}: the reply cache's folder cannot be made ({why}); set cache_path "
                "to a file in a folder that can be written"
            ) from None
        self.lock_timeout = lock_timeout()
        self._busy_ms = 250  # while opening: short waits, so that a held lock is reported
        deadline = time.monotonic() + self.lock_timeout
        told = False
        while True:
            try:
                self._check_file()
                with self._connect() as conn:
                    conn.executescript(_SCHEMA)
                break
            except sqlite3.DatabaseError as err:
                self.close()
                if not _is_locked(err):
                    raise self._unusable(err) from None
                if time.monotonic() >= deadline:
                    raise self._locked() from None
                if not told:
                    told = True
                    print(
                        f"lmcot: the reply cache {self.path} is locked by another process; "
                        f"waiting up to {self.lock_timeout:g} s ({LOCK_TIMEOUT_ENV} sets how long)",
                        file=sys.stderr,
                        flush=True,
                    )
                time.sleep(0.25)
        self._busy_ms = int(self.lock_timeout * 1000)
        self._connect().execute(f"PRAGMA busy_timeout={self._busy_ms}")

    def _locked(self) -> RunError:
        return RunError(
            f"{self.path}: the reply cache is locked by another process (waited "
            f"{self.lock_timeout:g} s); let it finish, or set cache_path to another file"
        )

    @contextlib.contextmanager
    def _waiting(self) -> Iterator[None]:
        """A lock held past ``lock_timeout`` as one message naming the file."""
        try:
            yield
        except sqlite3.OperationalError as err:
            if _is_locked(err):
                raise self._locked() from None
            raise

    def _check_file(self) -> None:
        """Refuse a file that is not SQLite, or an SQLite file of another program (tables of
        these names with other columns), before anything is written to it."""
        if not self.path.exists():
            return
        # plain: no WAL switch, reads only
        conn = sqlite3.connect(self.path, timeout=self._busy_ms / 1000)
        try:
            for table, expected in _COLUMNS.items():
                columns = tuple(row[1] for row in conn.execute(f"PRAGMA table_info({table})"))
                if columns and columns != expected:
                    raise InputError(
                        f"{self.path}: an SQLite file, but not a reply cache (its table "
                        f"{table!r} has the columns {', '.join(columns)}); move it away or set "
                        "cache_path to another file"
                    )
        finally:
            conn.close()

    def _unusable(self, err: sqlite3.DatabaseError) -> Exception:
        """The error for a cache file SQLite cannot use; a busy database keeps SQLite's error."""
        reason = str(err)
        if isinstance(err, sqlite3.OperationalError):
            return InputError(
                f"{self.path}: the reply cache cannot be opened or written (SQLite: {reason}); "
                "check the file's permissions, or set cache_path to another file"
            )
        return InputError(
            f"{self.path}: not an SQLite file, so it cannot be the reply cache (SQLite: "
            f"{reason}); move it away or set cache_path to another file"
        )

    def _connect(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=self._busy_ms / 1000, isolation_level=None)
            conn.execute(f"PRAGMA busy_timeout={self._busy_ms}")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn

    def get(self, key: str) -> CachedReply | None:
        with self._waiting():
            row = (
                self._connect()
                .execute(
                    "SELECT r.text, r.prompt_tokens, r.completion_tokens, r.cost, t.alternatives "
                    "FROM replies r LEFT JOIN top_logprobs t ON t.key = r.key WHERE r.key = ?",
                    (key,),
                )
                .fetchone()
            )
        if not row:
            return None
        alternatives = json.loads(row[4]) if row[4] is not None else None
        return CachedReply(
            *row[:4], tuple((t, float(p)) for t, p in alternatives) if alternatives else None
        )

    def put(self, key: str, model: str, reply: CachedReply) -> None:
        """Store a reply and drop its claim, in one transaction."""
        conn = self._connect()
        with self._waiting():
            conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(
                "INSERT OR REPLACE INTO replies VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    key,
                    model,
                    reply.text,
                    reply.prompt_tokens,
                    reply.completion_tokens,
                    reply.cost,
                    time.time(),
                ),
            )
            if reply.top_logprobs:
                conn.execute(
                    "INSERT OR REPLACE INTO top_logprobs VALUES (?, ?)",
                    (key, json.dumps([list(pair) for pair in reply.top_logprobs])),
                )
            else:
                conn.execute("DELETE FROM top_logprobs WHERE key = ?", (key,))
            conn.execute("DELETE FROM claims WHERE key = ?", (key,))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def claim(self, key: str, lease_seconds: float) -> str:
        """Try to become the one process that sends ``key``.

        Returns ``"done"`` (a reply is already stored), ``"claimed"`` (send it) or ``"busy"``
        (another live process is sending it: wait with ``get``).
        """
        conn = self._connect()
        with self._waiting():
            conn.execute("BEGIN IMMEDIATE")
        try:
            if conn.execute("SELECT 1 FROM replies WHERE key = ?", (key,)).fetchone():
                conn.execute("COMMIT")
                return "done"
            row = conn.execute("SELECT owner, expires FROM claims WHERE key = ?", (key,)).fetchone()
            if row and row[0] != self.owner and row[1] > time.time() and _alive(row[0]):
                conn.execute("COMMIT")
                return "busy"
            conn.execute(
                "INSERT OR REPLACE INTO claims VALUES (?, ?, ?)",
                (key, self.owner, time.time() + lease_seconds),
            )
            conn.execute("COMMIT")
            return "claimed"
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def release(self, key: str) -> None:
        """Give up a claim (the call failed): another process may try the key."""
        with self._waiting():
            self._connect().execute(
                "DELETE FROM claims WHERE key = ? AND owner = ?", (key, self.owner)
            )

    def add_from(self, other: str | os.PathLike) -> int:
        """Copy in the replies of another cache file that this one lacks (a committed reply
        cache, say); those it holds already are kept. Returns how many were added."""
        source = Path(other)
        if not source.is_file():
            raise MissingFileError(f"{source}: no reply cache there to read replies from")
        conn = self._connect()
        before = len(self)
        attached = False
        try:
            with self._waiting():
                conn.execute("ATTACH DATABASE ? AS other", (str(source),))
            attached = True
            tables = {
                row[0]
                for row in conn.execute("SELECT name FROM other.sqlite_master WHERE type='table'")
            }
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT OR IGNORE INTO replies SELECT * FROM other.replies")
            if "top_logprobs" in tables:  # caches written before the judge's protocol lack it
                conn.execute(
                    "INSERT OR IGNORE INTO top_logprobs SELECT * FROM other.top_logprobs "
                    "WHERE key IN (SELECT key FROM replies)"
                )
            conn.execute("COMMIT")
        except sqlite3.DatabaseError as err:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise InputError(
                f"{source}: its replies cannot be copied into the reply cache {self.path} "
                f"(SQLite: {err}); is it a reply cache of this version?"
            ) from None
        finally:
            if attached:
                conn.execute("DETACH DATABASE other")
        return len(self) - before

    def __len__(self) -> int:
        return self._connect().execute("SELECT COUNT(*) FROM replies").fetchone()[0]

    def keys(self) -> set[str]:
        return {row[0] for row in self._connect().execute("SELECT key FROM replies")}

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


def lock_timeout() -> float:
    """Seconds to wait for another process's lock on the cache: ``$LMCOT_CACHE_LOCK_TIMEOUT``
    or 60."""
    value = os.environ.get(LOCK_TIMEOUT_ENV, "")
    try:
        seconds = float(value) if value.strip() else 60.0
    except ValueError:
        raise ConfigurationError(f"{LOCK_TIMEOUT_ENV}={value!r}: not a number of seconds") from None
    check_at_least(LOCK_TIMEOUT_ENV, seconds, 0)
    return seconds


def _is_locked(err: sqlite3.DatabaseError) -> bool:
    """Whether SQLite gave up waiting for another connection's lock."""
    reason = str(err)
    return isinstance(err, sqlite3.OperationalError) and ("locked" in reason or "busy" in reason)


def _alive(owner: str) -> bool:
    """Whether a claim's owner may still be running (only checkable on this host)."""
    host, pid, _ = owner.rsplit(":", 2)
    if host != socket.gethostname():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
