"""Row indexes: what build_sft knows about each Unsloth row, kept so audit need not parse it again.

build_sft renders every example into many rows (each target agent × prompt variant) that
differ only in id, system prompt, weight and target; a training file of 20,000 rows may
hold 1,333 distinct conversations. While it writes a file, build_sft knows each row's
fields and which conversation it carries, and records them in a small JSONL index,
``.coord/cache/rows/<file path>.<sha256 of the file>.jsonl``:

- ``["s", text]``: a system prompt, numbered in order of appearance;
- ``[id, weight, target_agent, base_id, difficulty, system, content]`` per row, where
  ``system`` is a prompt's number (or the text itself past :data:`MAX_PROMPTS`) and
  ``content`` is ``[key, offset, length]`` when the row starts a run of rows with one
  conversation (its 16-byte content key in hex, and where its line is in the file) or
  ``null`` for "the same conversation as the row before";
- ``["end", rows, contents]`` last.

The content key is :func:`content_key` of :func:`content_text`, the very text audit
compares rows by. audit reads an index only when its name carries the digest of the file
as audit found it (so an edited file is parsed again) and when it saves work (at least
two rows per conversation); it then parses only the first line of each conversation it
has not seen, and checks that line's key against the index. The digest is the one the
step's manifest check found, which trusts a manifest whose file size and mtime still
match (the same trust that lets a step skip): a file edited behind coord's back without
changing either would be audited from its index.
"""

from __future__ import annotations

import os
import tempfile
import weakref
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

import orjson
import xxhash

from coordinator.core.errors import InternalError

INDEX_DIR = Path(".coord/cache/rows")
"""Workspace-relative directory of the row indexes."""
MAX_PROMPTS = 4096
"""Distinct system prompts numbered per file; later ones are written out in their rows."""
_SUFFIX = ".jsonl"


def content_text(messages: Sequence[Mapping[str, Any]]) -> str:
    """The text rows are compared by: ``from: value`` of every message but system prompts, one per line."""
    return "\n".join(f"{m['from']}: {m['value']}" for m in messages if m["from"] != "system")


def content_key(text: str) -> bytes:
    """16-byte xxh3-128 of a text: equal texts, equal keys (different ones collide with p ~ n²/2¹²⁹)."""
    return xxhash.xxh3_128_digest(text.encode("utf-8", "surrogatepass"))


def _stem(rel: str) -> str:
    return rel.replace("%", "%25").replace("/", "%2F")


def index_path(workspace: Path, rel: str, sha256: str) -> Path:
    """Where the index of the file at workspace-relative ``rel`` with digest ``sha256`` lives."""
    return workspace / INDEX_DIR / f"{_stem(rel)}.{sha256}{_SUFFIX}"


class RowIndexWriter:
    """Streams the index of one training file while it is written; :meth:`finish` stores it.

    The index goes to a temporary file beside its final place (memory stays flat); one not
    finished (the step failed) is removed by :meth:`discard` or when the writer is dropped.
    """

    def __init__(self, workspace: Path, rel: str) -> None:
        self.workspace, self.rel = workspace, rel
        directory = workspace / INDEX_DIR
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{_stem(rel)}.", suffix=".tmp", dir=directory)
        self._tmp = Path(tmp)
        self._fh = os.fdopen(fd, "wb", buffering=1 << 20)
        self._cleanup = weakref.finalize(self, _drop, self._fh, self._tmp)
        self._prompts: dict[str, int] = {}
        self._last: bytes | None = None
        self.rows = self.contents = 0

    def add(self, row: Mapping[str, Any], key: bytes, offset: int, length: int) -> None:
        """Record one row written at ``offset`` (``length`` bytes) whose conversation has ``key``."""
        self.add_row(row["id"], row["weight"], row["target_agent"], row["base_id"], row["difficulty"],
                     row["conversations"][0]["value"], key, offset, length)

    def add_row(self, row_id: str, weight: float, target: str, base_id: str, difficulty: str | None,
                prompt: str, key: bytes, offset: int, length: int) -> None:
        """:meth:`add` for a row given by its fields (``prompt``: its system prompt)."""
        system: int | str = self._prompts.get(prompt, -1)
        if system == -1:
            if len(self._prompts) < MAX_PROMPTS:
                system = self._prompts[prompt] = len(self._prompts)
                self._fh.write(orjson.dumps(["s", prompt], option=orjson.OPT_APPEND_NEWLINE))
            else:
                system = prompt
        content = None
        if key != self._last:
            content = [key.hex(), offset, length]
            self._last = key
            self.contents += 1
        self._fh.write(orjson.dumps([row_id, weight, target, base_id, difficulty, system, content],
                                    option=orjson.OPT_APPEND_NEWLINE))
        self.rows += 1

    def finish(self, sha256: str) -> None:
        """Store the index for the file's final digest (and drop the indexes of its earlier versions)."""
        stem = _stem(self.rel)
        for old in (self.workspace / INDEX_DIR).glob(f"{stem}.*{_SUFFIX}"):
            if old.name[len(stem) + 1:-len(_SUFFIX)].isalnum():
                old.unlink(missing_ok=True)
        if self.contents * 2 > self.rows:  # as many conversations as rows: nothing to spare
            self.discard()
            return
        self._fh.write(orjson.dumps(["end", self.rows, self.contents], option=orjson.OPT_APPEND_NEWLINE))
        self._fh.close()
        # a cache: no fsync, a power cut only means parsing the file again
        os.replace(self._tmp, index_path(self.workspace, self.rel, sha256))
        self._cleanup.detach()

    def discard(self) -> None:
        """Remove the unfinished index."""
        self._cleanup()


def _drop(fh: BinaryIO, tmp: Path) -> None:
    fh.close()
    tmp.unlink(missing_ok=True)


class RowIndex:
    """A stored index, read row by row; :meth:`content` parses a conversation's first line."""

    def __init__(self, path: Path, data_file: Path) -> None:
        self.path, self.data_file = path, data_file
        # buffered: the lines wanted come in file order, so most reads are served from the
        # buffer (a pread each would be a blocking call per conversation)
        self._fh = data_file.open("rb", buffering=1 << 20)

    @classmethod
    def open(cls, workspace: Path, rel: str, sha256: str, data_file: Path) -> RowIndex | None:
        """The index of ``data_file`` (workspace-relative ``rel``) as it is now, or None."""
        path = index_path(workspace, rel, sha256)
        return cls(path, data_file) if path.is_file() else None

    def rows(self) -> Iterator[tuple[dict[str, Any], list[str], tuple[bytes, int, int]]]:
        """``(row fields, system prompts, (content key, offset, length))`` of every row, in file order.

        The row fields are those audit reads: id, weight, target_agent, base_id, difficulty.
        """
        prompts: list[str] = []
        current: tuple[bytes, int, int] | None = None
        ended = False
        with self.path.open("rb", buffering=1 << 20) as fh:
            for line in fh:
                rec = orjson.loads(line)
                head = rec[0]
                if head == "s":
                    prompts.append(rec[1])
                    continue
                if head == "end":
                    ended = True
                    break
                rid, weight, target, base_id, difficulty, system, content = rec
                if content is not None:
                    current = (bytes.fromhex(content[0]), content[1], content[2])
                if current is None:
                    raise self._broken("a row before any conversation")
                row = {"id": rid, "weight": weight, "target_agent": target, "base_id": base_id,
                       "difficulty": difficulty}
                yield row, [prompts[system] if isinstance(system, int) else system], current
        if not ended:
            raise self._broken("no end record")

    def content(self, key: bytes, offset: int, length: int) -> dict[str, Any]:
        """The row at ``offset``, checked to carry the conversation of ``key``."""
        self._fh.seek(offset)
        row = orjson.loads(self._fh.read(length))
        if not isinstance(row, dict) or content_key(content_text(row["conversations"])) != key:
            raise self._broken(f"the row at byte {offset} is not the one it names")
        return row

    def _broken(self, what: str) -> InternalError:
        return InternalError(f"row index {self.path} does not match {self.data_file}: {what}; "
                             f"delete the index to audit the file without it")

    def close(self) -> None:
        """Close the data file."""
        self._fh.close()

    def __enter__(self) -> RowIndex:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
