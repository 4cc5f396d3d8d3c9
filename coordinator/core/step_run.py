"""Idempotent steps: manifests beside every output, keyed by code version, parameters and inputs.

A re-run whose manifests still match is skipped; a killed run that wrote half an output
never leaves a matching manifest (outputs are written atomically, manifests after them).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from coordinator.core.errors import ParameterError
from coordinator.core.io import atomic_write_json, sha256_file
from coordinator.core.step import STEPS, Artifact, MetricValue, StepContext, StepResult

MANIFEST_SCHEMA_VERSION = 1


def canonical_json(obj: Any) -> bytes:
    """Stable bytes for hashing parameters."""
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)


def fingerprint(path: Path) -> str:
    """sha256 of a file, reusing its manifest's digest when size and mtime still match."""
    path = Path(path)
    st = path.stat()
    man = manifest_path(path)
    if man.exists():
        try:
            data = orjson.loads(man.read_bytes())
            if data.get("bytes") == st.st_size and data.get("mtime_ns") == st.st_mtime_ns:
                return str(data["sha256"])
        except (orjson.JSONDecodeError, KeyError, OSError):
            pass
    return sha256_file(path)


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
        self.inputs = {ctx.rel(p): fingerprint(p) for p in sorted(Path(i) for i in inputs)}
        h = hashlib.sha256()
        h.update(canonical_json({"step": step_name, "code": self.code_version, "params": params,
                                 "inputs": self.inputs, "seed": seed, "provider": provider}))
        self.key = h.hexdigest()
        self._records: dict[Path, dict[str, Any]] = {}

    def cached(self) -> StepResult | None:
        """The previous result when every output's manifest matches this run's key."""
        if self.ctx.force or not self.outputs:
            return None
        metrics: dict[str, MetricValue] | None = None
        artifacts = []
        for out in self.outputs:
            man = manifest_path(out)
            if not out.exists() or not man.exists():
                return None
            try:
                data = orjson.loads(man.read_bytes())
            except (orjson.JSONDecodeError, OSError):
                return None
            if data.get("key") != self.key or fingerprint(out) != data.get("sha256"):
                return None
            metrics = data.get("step_metrics", {})
            artifacts.append(Artifact(self.ctx.rel(out), data["sha256"], data["bytes"], data.get("rows")))
        return StepResult(metrics=dict(metrics or {}), artifacts=artifacts, skipped=True,
                          notes=["outputs up to date; step skipped"])

    def record(self, output: Path, *, rows: int | None = None, sha256: str | None = None,
               rejects: int = 0, extra: dict[str, Any] | None = None) -> None:
        """Note one finished output (call after it is in place)."""
        output = Path(output)
        st = output.stat()
        self._records[output] = {
            "rows": rows,
            "sha256": sha256 or sha256_file(output),
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
                "extra": rec["extra"],
                "step_metrics": metrics,
            }
            atomic_write_json(manifest_path(out), manifest)
            # atomic_write_json replaced a sibling, not the output: its mtime is unchanged
            artifacts.append(Artifact(self.ctx.rel(out), rec["sha256"], rec["bytes"], rec["rows"]))
        return StepResult(metrics=dict(metrics), artifacts=artifacts, notes=list(notes))
