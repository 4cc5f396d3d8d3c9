"""Replacing a file people edit without losing a save that lands while coord writes it.

Editors take no lock coord could wait for, and many save in place: open with
truncation, then write. Two races follow from that, and both are closed here:

- coord reads the file between the person's truncation and their write, and sees
  it empty: :func:`read_settled` waits (briefly) for the save to finish;
- the person opens the file just before coord renames its new version over it, so
  their bytes go into the file coord replaced: :func:`replace_if_unchanged` keeps
  that file open across the rename and reads it again afterwards; a save found
  there is handed back (``late``) for the caller to merge and write once more.

A save that arrives after the rename goes to the new file and is the person's to keep.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from coordinator.core.errors import InputError
from coordinator.core.io import wrote

SETTLE_POLL_S = 0.005
"""How often a save in progress is polled."""
SETTLE_MAX_S = 0.25
"""How long a file that is empty (truncated, not yet written) or still changing is waited for."""


@dataclass(frozen=True)
class Replaced:
    """What :func:`replace_if_unchanged` did."""

    ok: bool
    """The new text is in place (False: the file no longer held what was expected; nothing written)."""
    late: str | None = None
    """A person's save that went into the replaced file during the rename: merge it and write again."""


class NotUtf8(InputError):
    """A board or team file a person saved in another encoding than UTF-8; nothing of it is applied or replaced."""


def decode(data: bytes, path: Path | str) -> str:
    """UTF-8 text; :class:`NotUtf8` naming the line and column of the first bad byte otherwise."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        column = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise NotUtf8(f"not valid UTF-8 (byte 0x{data[e.start]:02x} at column {column}); save the file as UTF-8 "
                      "and coord applies it (until then coord leaves the file as it is)",
                      path=path, line=line) from None


def read_text(path: Path, shown: str | None = None) -> str:
    """A board's text (:class:`NotUtf8` when it is not UTF-8; ``shown`` names it in the message)."""
    return decode(path.read_bytes(), shown or path)


def read_settled(path: Path, shown: str | None = None) -> str | None:
    """The file's text (None when it does not exist), waiting out a save that has truncated it but not written.

    :class:`NotUtf8` when a person saved it in another encoding.
    """
    try:
        with path.open("rb") as fh:
            data = fh.read()
            if not data:
                data = _settle(fh, data)
    except FileNotFoundError:
        return None
    return decode(data, shown or path)


def replace_if_unchanged(path: Path, text: str, expected: str | None) -> Replaced:
    """Atomically replace ``path`` with ``text`` unless it no longer holds ``expected`` (None: absent)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(text.encode("utf-8"))
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)
        try:
            old = path.open("rb")
        except FileNotFoundError:
            if expected is not None:
                os.unlink(tmp)
                return Replaced(ok=False)
            os.replace(tmp, path)
            wrote("board", path)
            return Replaced(ok=True)
        with old:
            before = old.read()
            if expected is None or before != expected.encode("utf-8"):
                os.unlink(tmp)
                return Replaced(ok=False)
            os.replace(tmp, path)
            late = _late_save(old, before)
            wrote("board", path)
            return Replaced(ok=True, late=late)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _late_save(fh: IO[bytes], before: bytes) -> str | None:
    """A save that reached the replaced file (still open as ``fh``) after it was checked, or None."""
    fh.seek(0)
    data = fh.read()
    if data == before:
        return None
    return _settle(fh, data).decode("utf-8", errors="replace")


def _settle(fh: IO[bytes], data: bytes) -> bytes:
    """Poll ``fh`` until its content stops changing and is not empty (a save in progress), within SETTLE_MAX_S."""
    deadline = time.monotonic() + SETTLE_MAX_S
    while time.monotonic() < deadline:
        time.sleep(SETTLE_POLL_S)
        fh.seek(0)
        again = fh.read()
        if again == data and again:
            break
        data = again
    return data
