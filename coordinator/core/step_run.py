"""Idempotent steps: manifests beside every output, keyed by code version, parameters and inputs.

A re-run whose manifests still match is skipped; a killed run that wrote half an output
never leaves a matching manifest (outputs are written atomically, manifests after them).

Size and modification time only say which digest to *expect*: before a step is skipped, every
output and every input that has a manifest is read in full and checked against the fast digest
(xxh3-128) its manifest recorded, so a same-size edit whose mtime was put back is still seen.
An output that no longer holds what coord wrote (a person edited it) and that a run then
replaces is named in the step's notes and in :attr:`StepResult.replaced`.
"""

from __future__ import annotations

import hashlib
import socket
import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import xxhash

from coordinator.core.errors import ParameterError
from coordinator.core.io import atomic_write_json, sha256_file
from coordinator.core.step import STEPS, Artifact, MetricValue, StepContext, StepResult

_HOST = socket.gethostname()
"""Recorded in every manifest: the machine that wrote the output."""
MANIFEST_SCHEMA_VERSION = 2
"""1: the first layout; 2: ``xxh3_128``, the fast digest a skip verifies the file's bytes by."""
WRITING_SUFFIX = ".coord-writing"
"""A marker beside a step's first output while the step writes its outputs (removed once its
manifests are written): a mismatch a killed run left is then not taken for a person's edit."""


def canonical_json(obj: Any) -> bytes:
    """Stable bytes for hashing parameters."""
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)


def xxh3_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex xxh3-128 of a file, streamed (several times faster than sha256: used to verify, not to name)."""
    h = xxhash.xxh3_128()
    with Path(path).open("rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def _manifest(path: Path) -> dict[str, Any] | None:
    """The manifest beside ``path``, or None when there is none or it cannot be read."""
    try:
        data = orjson.loads(manifest_path(path).read_bytes())
    except (orjson.JSONDecodeError, OSError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("sha256"), str) else None


def _trusted(path: Path) -> dict[str, Any] | None:
    """``path``'s manifest when the file's size and mtime are still the ones it recorded."""
    data = _manifest(path)
    if data is None:
        return None
    st = path.stat()
    return data if data.get("bytes") == st.st_size and data.get("mtime_ns") == st.st_mtime_ns else None


def fingerprint(path: Path) -> str:
    """sha256 of a file, reusing its manifest's digest when size and mtime still match."""
    path = Path(path)
    data = _trusted(path)
    return str(data["sha256"]) if data is not None else sha256_file(path)


_verified: dict[tuple[int, ...], str] = {}
"""Files this process already read in full, by what changes with any write (inode, size, mtime and
ctime, which no one can set back), so a file that is one step's output and the next one's input is
read once per run."""
_verified_lock = threading.Lock()


def content_sha256(path: Path, data: Mapping[str, Any] | None) -> str:
    """sha256 of ``path``'s bytes as they are now, read in full: the manifest ``data``'s digest when the
    file's xxh3-128 is the one that manifest recorded, else computed."""
    st = path.stat()
    stamp = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    with _verified_lock:
        known = _verified.get(stamp)
    if known is not None:
        return known
    if data is not None and isinstance(data.get("xxh3_128"), str) and data.get("bytes") == st.st_size \
            and xxh3_file(path) == data["xxh3_128"]:
        digest = str(data["sha256"])
    else:
        digest = sha256_file(path)
    with _verified_lock:
        if len(_verified) > 100_000:
            _verified.clear()
        _verified[stamp] = digest
    return digest


def manifest_path(output: Path) -> Path:
    """Where the manifest of ``output`` lives."""
    output = Path(output)
    return output.with_name(f"{output.name}.manifest.json")


class StepRun:
    """Manifest bookkeeping for one execution of a step.

    Usage inside a step::

        run = StepRun(ctx, "audit", params, inputs=[...], outputs=[...])
        if (cached := run.cached()) is not None:
            return cached
        ... write outputs ...
        run.record(out_path, rows=n, sha256=writer.sha256)
        return run.finish(metrics)
    """

    def __init__(self, ctx: StepContext, step_name: str, params: dict[str, Any], *,
                 inputs: Sequence[Path], outputs: Sequence[Path], seed: int | None = None,
                 provider: str | None = None) -> None:
        self.ctx = ctx
        self.step = step_name
        self.params = params
        self.seed = seed
        self.provider = provider
        self.outputs = [Path(o) for o in outputs]
        spec = STEPS.find(step_name) if ctx.code_version is None else None
        self.code_version = ctx.code_version or (spec.code_version if spec else "unregistered")
        self._input_paths = sorted(Path(i) for i in inputs)
        self.inputs = {ctx.rel(p): fingerprint(p) for p in self._input_paths}
        self.key = self._key()
        self._records: dict[Path, dict[str, Any]] = {}
        self._edited: dict[Path, str] = {}
        """Outputs a person changed since coord wrote them (path → its workspace path)."""

    def _key(self) -> str:
        h = hashlib.sha256()
        h.update(canonical_json({"step": self.step, "code": self.code_version, "params": self.params,
                                 "inputs": self.inputs, "seed": self.seed, "provider": self.provider}))
        return h.hexdigest()

    def cached(self) -> StepResult | None:
        """The previous result when every output's manifest matches this run's key and every output and
        input still holds the bytes its manifest recorded (read in full, never judged by mtime)."""
        current = {out: self._current(out) for out in self.outputs}
        self._note_edits(current)
        result = None if self.ctx.force or not self.outputs else self._up_to_date(current)
        if result is None:
            self._will_write()
        else:  # the outputs are the ones recorded: a marker a kill left after the manifests is stale
            self._marker().unlink(missing_ok=True)
        return result

    def _up_to_date(self, current: Mapping[Path, tuple[dict[str, Any] | None, str | None]]) -> StepResult | None:
        if any(data is None or digest is None or digest != data["sha256"] for data, digest in current.values()):
            return None
        self._verify_inputs()
        metrics: dict[str, MetricValue] | None = None
        artifacts = []
        for out, (data, _) in current.items():
            assert data is not None
            if data.get("key") != self.key:
                return None
            metrics = data.get("step_metrics", {})
            artifacts.append(Artifact(self.ctx.rel(out), data["sha256"], data["bytes"], data.get("rows")))
        return StepResult(metrics=dict(metrics or {}), artifacts=artifacts, skipped=True,
                          notes=["outputs up to date; step skipped"])

    def _current(self, out: Path) -> tuple[dict[str, Any] | None, str | None]:
        """An output's manifest and the sha256 of its bytes now (None for what is missing)."""
        data = _manifest(out)
        if data is None or not out.exists():
            return data, None
        return data, content_sha256(out, data)

    def _note_edits(self, current: Mapping[Path, tuple[dict[str, Any] | None, str | None]]) -> None:
        """Outputs whose bytes are no longer those coord recorded: a person's edit, unless a run of this
        step was killed while writing them (its marker is still there)."""
        if self._marker().exists():
            return
        self._edited = {out: self.ctx.rel(out) for out, (data, digest) in current.items()
                        if data is not None and digest is not None and digest != data["sha256"]}

    def _verify_inputs(self) -> None:
        """Make the key from what the inputs hold: an input whose manifest was trusted on size and mtime
        is read in full (one without a manifest was hashed in full already)."""
        true = {}
        for path in self._input_paths:
            rel = self.ctx.rel(path)
            data = _trusted(path)
            true[rel] = content_sha256(path, data) if data is not None else self.inputs[rel]
        if true != self.inputs:
            self.inputs = true
            self.key = self._key()

    def _marker(self) -> Path:
        first = min(self.outputs) if self.outputs else self.ctx.workspace / "_"
        return first.with_name(f".{first.name}{WRITING_SUFFIX}")

    def _will_write(self) -> None:
        """The step is about to write its outputs: leave the marker until its manifests are written."""
        if self.outputs:
            marker = self._marker()
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.touch()

    def record(self, output: Path, *, rows: int | None = None, sha256: str | None = None,
               rejects: int = 0, extra: dict[str, Any] | None = None) -> None:
        """Note one finished output (call after it is in place)."""
        output = Path(output)
        st = output.stat()
        self._records[output] = {
            "rows": rows,
            "sha256": sha256 or sha256_file(output),
            "xxh3_128": xxh3_file(output),
            "bytes": st.st_size,
            "mtime_ns": st.st_mtime_ns,
            "rejects": rejects,
            "extra": extra or {},
        }

    def finish(self, metrics: dict[str, MetricValue], notes: Sequence[str] = ()) -> StepResult:
        """Write a manifest beside every output and return the step result."""
        missing = [str(o) for o in self.outputs if o not in self._records]
        if missing:
            raise ParameterError(f"step {self.step!r} declared outputs it did not record: {missing}")
        now = datetime.now(UTC).isoformat(timespec="seconds")
        artifacts = []
        for out, rec in self._records.items():
            manifest = {
                "schema_version": MANIFEST_SCHEMA_VERSION,
                "step": self.step,
                "output": self.ctx.rel(out),
                "sha256": rec["sha256"],
                "xxh3_128": rec["xxh3_128"],
                "bytes": rec["bytes"],
                "mtime_ns": rec["mtime_ns"],
                "rows": rec["rows"],
                "rejects": rec["rejects"],
                "inputs": self.inputs,
                "params": self.params,
                "seed": self.seed,
                "provider": self.provider,
                "code_version": self.code_version,
                "key": self.key,
                "created_at": now,
                "host": _HOST,  # which machine wrote it (workers may run steps on several)
                "extra": rec["extra"],
                "step_metrics": metrics,
            }
            atomic_write_json(manifest_path(out), manifest)
            # atomic_write_json replaced a sibling, not the output: its mtime is unchanged
            artifacts.append(Artifact(self.ctx.rel(out), rec["sha256"], rec["bytes"], rec["rows"]))
        self._marker().unlink(missing_ok=True)
        replaced = [rel for out, rel in self._edited.items() if out in self._records]
        return StepResult(metrics=dict(metrics), artifacts=artifacts, replaced=replaced,
                          notes=[*notes, *(f"replaced {rel}, which had been changed by hand since coord wrote it"
                                           for rel in replaced)])
