"""``coord doctor``: will the real agent CLIs work, before a run depends on them?

For each CLI it finds the executable, asks its version (held against coord's floor),
says how it would authenticate (a key in the variable the CLI itself reads, or its
own login), and on request runs a short smoke prompt headless, read exactly as a
task's output is read.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from git import Repo

from roles.drivers.cli._flavors import FLAVORS, CliSettings, Flavor
from roles.drivers.cli._process import run_in_group
from roles.drivers.cli._version import CliVersion, clear_cache, cli_env, cli_version
from roles.providers.redact import Redactor

SMOKE_PROMPT = "Reply with the single word ok. Do not read, write or run anything."
STATUS_TIMEOUT_S = 10.0


@dataclass
class CliCheck:
    """What coord found out about one agent CLI."""

    agent: str
    executable: str
    roles: list[str] = field(default_factory=list)
    """Roles bound to it (empty: checked because nothing is bound, for information)."""
    version: CliVersion | None = None
    auth: str = ""
    auth_ok: bool | None = None
    """None: coord cannot tell from outside (``--smoke`` will)."""
    smoke: str | None = None
    smoke_ok: bool | None = None

    @property
    def ok(self) -> bool:
        """Usable as far as coord can tell."""
        return (self.version is not None and self.version.path is not None and self.version.problem is None
                and self.auth_ok is not False and self.smoke_ok is not False)


def _status(argv: list[str], env: Mapping[str, str]) -> tuple[int, str]:
    try:
        with tempfile.TemporaryDirectory(prefix="coord-doctor-") as scratch:  # never in the workspace
            p = subprocess.run(argv, capture_output=True, text=True, errors="replace", stdin=subprocess.DEVNULL,
                               timeout=STATUS_TIMEOUT_S, env=dict(env), cwd=scratch)
    except (OSError, subprocess.TimeoutExpired) as e:
        return -1, str(e)
    text = next((ln.strip() for ln in (p.stdout + "\n" + p.stderr).splitlines() if ln.strip()), "")
    return p.returncode, text[:160]


def auth_of(flavor: Flavor, path: str, env: Mapping[str, str]) -> tuple[str, bool | None]:
    """How the CLI would authenticate, and whether that looks usable (None: cannot tell)."""
    for var in flavor.key_env:
        if env.get(var):
            return f"key in {var}", True
    home = Path(env.get("HOME") or Path.home())
    if flavor.name == "claude":
        if env.get("CLAUDE_CODE_OAUTH_TOKEN"):
            return "token in CLAUDE_CODE_OAUTH_TOKEN", True
        creds = home / ".claude" / ".credentials.json"
        if creds.is_file():
            return f"logged in ({creds})", True
        return ("no ANTHROPIC_API_KEY and no login file found (on macOS the login lives in the keychain; "
                "--smoke tells for sure)"), None
    argv = [path, "login", "status"] if flavor.name == "codex" else [path, "status"]
    code, text = _status(argv, env)
    if code == 0:
        return f"logged in ({text})" if text else "logged in", True
    hint = {"codex": "run `codex login`, or set CODEX_API_KEY (codex exec does not read OPENAI_API_KEY)",
            "cursor": "run `agent login`, or set CURSOR_API_KEY"}[flavor.name]
    return f"not logged in ({text or f'exit {code}'}): {hint}", False


def smoke(flavor: Flavor, settings: CliSettings, timeout: float) -> tuple[str, bool]:
    """Run :data:`SMOKE_PROMPT` headless in a scratch git repository; read it as a task's output."""
    with tempfile.TemporaryDirectory(prefix="coord-doctor-") as tmp:
        work = Path(tmp) / "repo"
        work.mkdir()
        Repo.init(work)  # codex exec refuses to run outside a git repository
        last = Path(tmp) / "last-message.md"
        log = Path(tmp) / "smoke.log"
        argv = flavor.build(settings, SMOKE_PROMPT, last)
        try:
            proc = run_in_group(argv, cwd=work, env=cli_env(flavor), log_path=log, redactor=Redactor.from_env(),
                                cancel=threading.Event(), timeout=timeout, finished=flavor.finished)
        except OSError as e:
            return f"could not start: {e.strerror or e}", False
        reply = flavor.parse(proc.stdout, last)
        if proc.timed_out:
            return f"no answer within {timeout:g}s", False
        if (proc.exit_code != 0 and not proc.ended_after_result) or not reply.ok:
            why = reply.problem or ""
            if proc.exit_code != 0 and not proc.ended_after_result:
                said = "" if why.endswith("(unparsable output)") else why
                why = f"exit {proc.exit_code}" + (f" ({said})" if said else "")
            tail = (proc.stderr.strip().splitlines() or [""])[-1][:200]
            return f"{why}" + (f" — stderr: {tail}" if tail else ""), False
        u = reply.usage
        cost = f", ${reply.cost_usd:.4f}" if reply.cost_usd is not None else ""
        said = reply.text.strip().replace("\n", " ")[:40]
        return (f"answered {said!r} in {proc.duration_s:.1f}s ({u.get('input_tokens', 0)} in / "
                f"{u.get('output_tokens', 0)} out tokens{cost})"), True


def _strs(value: object) -> tuple[str, ...]:
    return tuple(str(v) for v in value) if isinstance(value, list | tuple) else ()


def diagnose(bindings: Mapping[str, Mapping[str, object]], *, run_smoke: bool = False,
             smoke_timeout: float = 60.0, env: Mapping[str, str] | None = None) -> list[CliCheck]:
    """Check every CLI the ``bindings`` (role → binding with ``driver: cli``) use; with none, all three.

    Each distinct executable is checked once, for all the roles that run it.
    """
    env = dict(os.environ if env is None else env)
    clear_cache()  # a CLI updated since this process last asked answers afresh
    checks: dict[tuple[str, str], CliCheck] = {}
    settings: dict[tuple[str, str], CliSettings] = {}
    for role, b in bindings.items():
        agent = str(b.get("agent", ""))
        flavor = FLAVORS.get(agent)
        if flavor is None or b.get("driver") != "cli":
            continue
        exe = str(b.get("executable") or flavor.executable)
        key = (agent, exe)
        checks.setdefault(key, CliCheck(agent, exe)).roles.append(role)
        model = b.get("model")
        settings.setdefault(key, CliSettings(
            executable=exe, model=str(model) if model else None,
            permissions=str(b.get("permissions") or flavor.permissions),
            flags=_strs(b.get("flags")), allowed_tools=_strs(b.get("allowed_tools"))))
    if not checks:
        for agent, flavor in FLAVORS.items():
            checks[(agent, flavor.executable)] = CliCheck(agent, flavor.executable)
            settings[(agent, flavor.executable)] = CliSettings(flavor.executable, None, flavor.permissions)
    for key, check in checks.items():
        flavor = FLAVORS[check.agent]
        check.version = cli_version(flavor, check.executable)
        if check.version.path is None:
            continue
        check.auth, check.auth_ok = auth_of(flavor, check.version.path, env)
        if run_smoke and check.version.problem is None:
            check.smoke, check.smoke_ok = smoke(flavor, settings[key], smoke_timeout)
    return list(checks.values())
