"""Paid model answers of the generate step, kept so that no answer is ever paid for twice.

One append-only JSONL file per provider, model and agent under
``.coord/cache/generate/<provider>/<model>/<agent>.jsonl``. Every answer is written as
one line the moment it arrives (one ``write`` on an ``O_APPEND`` descriptor, then
``fsync``), so a step killed, failed or held by the budget half-way keeps everything it
paid for, and its rerun calls the model only for what is missing.

A line is ``{"v": 1, "key": …, "id": …, "draw": …, "model": …, "answer": {…}}``; the key
is a digest of everything that determines the answer (see
:func:`pipeline.llm_examples.LLMExampleSource.key`). A line that does not parse — the
tail of a write cut short by a kill, or a hand edit — is skipped with a warning naming
the file and line, never fatal: that one answer is simply asked for again.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from pathlib import Path
from typing import Any

import orjson

log = logging.getLogger(__name__)

CACHE_SCHEMA_VERSION = 1
CACHE_DIR = Path(".coord/cache/generate")
"""Workspace-relative root of the generate answer cache."""
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def cache_file(root: Path, provider: str, model: str, agent: str) -> Path:
    """Where the answers of one provider, model and agent live (model names made file-name safe)."""
    return root / provider / (_UNSAFE.sub("_", model).strip("._") or "model") / f"{agent}.jsonl"


class AnswerCache:
    """The answers already paid for, by key; :meth:`put` is safe to call from many threads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._answers: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._needs_newline = False
        """The file ends in a cut-off line: the next append starts a fresh line first."""
        self.skipped = 0
        """Broken lines skipped while loading."""
        if path.exists():
            self._load()

    def _load(self) -> None:
        data = self.path.read_bytes()
        self._needs_newline = bool(data) and not data.endswith(b"\n")
        for n, line in enumerate(data.split(b"\n"), 1):
            if not line.strip():
                continue
            reason = None
            try:
                rec = orjson.loads(line)
            except orjson.JSONDecodeError as e:
                reason = f"not JSON: {e}"
            else:
                if not (isinstance(rec, dict) and rec.get("v") == CACHE_SCHEMA_VERSION
                        and isinstance(rec.get("key"), str) and isinstance(rec.get("answer"), dict)):
                    reason = f"not a version-{CACHE_SCHEMA_VERSION} cache record"
            if reason is not None:
                self.skipped += 1
                log.warning("%s:%d: skipped a broken cache line (%s); that answer will be asked for again",
                            self.path, n, reason[:160])
                continue
            self._answers[rec["key"]] = rec["answer"]

    def __len__(self) -> int:
        return len(self._answers)

    def __contains__(self, key: str) -> bool:
        return key in self._answers

    def get(self, key: str) -> dict[str, Any] | None:
        """The stored answer for ``key``, or None."""
        return self._answers.get(key)

    def put(self, key: str, answer: dict[str, Any], **meta: Any) -> None:
        """Persist one answer durably, then remember it (``meta``: id, draw, model — for people reading)."""
        line = orjson.dumps({"v": CACHE_SCHEMA_VERSION, "key": key, **meta, "answer": answer},
                            option=orjson.OPT_APPEND_NEWLINE)
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self._needs_newline:
                line = b"\n" + line
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                # O_APPEND under the lock: a line is either whole or the cut-off tail of the last one
                view = memoryview(line)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            finally:
                os.close(fd)
            self._needs_newline = False
            self._answers[key] = answer
