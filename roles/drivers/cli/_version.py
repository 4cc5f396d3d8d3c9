"""Each agent CLI's version, asked once per executable and run, and held against coord's floor."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from coordinator.core.ports import printable
from roles.drivers.cli._flavors import Flavor, Version, parse_version, show_version

VERSION_TIMEOUT_S = 10.0
_CACHE: dict[tuple[str, float], CliVersion] = {}
_LOCK = threading.Lock()


@dataclass(frozen=True)
class CliVersion:
    """What ``<cli> --version`` said."""

    path: str | None
    """The executable found on PATH (None: not found)."""
    text: str
    """Its first output line, as printed (empty when it printed nothing)."""
    version: Version | None
    problem: str | None = None
    """Why coord will not run this CLI (too old), or None."""

    @property
    def shown(self) -> str:
        """The version for boards, ledgers and commit trailers."""
        return show_version(self.version) if self.version else (self.text or "unknown")


def cli_env(flavor: Flavor, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment a CLI runs in: coord's, minus what would make the CLI refuse to start."""
    env = dict(os.environ if base is None else base)
    for name in flavor.scrub_env:
        env.pop(name, None)
    return env


def cli_version(flavor: Flavor, executable: str, role: str | None = None) -> CliVersion:
    """Run ``executable --version`` (cached per executable and its modification time)."""
    path = shutil.which(executable)
    if path is None:
        return CliVersion(None, "", None, f"{executable!r} is not on PATH")
    try:
        key = (path, Path(path).stat().st_mtime)
    except OSError:
        key = (path, 0.0)
    with _LOCK:
        if key in _CACHE:
            return _CACHE[key]
    got = _ask(flavor, path, role)
    with _LOCK:
        _CACHE[key] = got
    return got


def _ask(flavor: Flavor, path: str, role: str | None) -> CliVersion:
    # In an empty scratch directory: a wrapper script that does not know --version must not do its
    # work (edit files, commit) in the workspace or wherever coord was started.
    try:
        with tempfile.TemporaryDirectory(prefix="coord-version-") as scratch:
            proc = subprocess.run([path, "--version"], capture_output=True, text=True, errors="replace",
                                  stdin=subprocess.DEVNULL, timeout=VERSION_TIMEOUT_S, env=cli_env(flavor),
                                  cwd=scratch)
    except subprocess.TimeoutExpired:  # a wrapper without --version still runs; its version is unknown
        return CliVersion(path, f"unknown (`--version` gave no answer in {VERSION_TIMEOUT_S:g}s)", None)
    except OSError:
        return CliVersion(path, "", None)
    text = next((ln.strip() for ln in printable(proc.stdout + "\n" + proc.stderr).splitlines() if ln.strip()), "")
    if proc.returncode != 0:
        text = f"unknown (`--version` exited {proc.returncode})"
    version = parse_version(text) if proc.returncode == 0 else None
    problem = None
    if version is not None and version < flavor.min_version:
        who = f"role {role!r} runs " if role else ""
        problem = (f"{who}{flavor.name} {show_version(version)} ({path}); coord needs "
                   f"{show_version(flavor.min_version)} or later for {flavor.min_reason}: update the CLI, or "
                   "point roles.ROLE.executable in coord.yaml at a newer one")
    return CliVersion(path, text[:200], version, problem)


def clear_cache() -> None:
    """Forget every version asked (tests swap executables in place)."""
    with _LOCK:
        _CACHE.clear()
