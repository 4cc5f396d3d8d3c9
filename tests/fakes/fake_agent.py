"""Scripted stand-ins for the ``claude``, ``codex`` and Cursor ``agent`` CLIs.

Each executable in ``tests/fakes/bin`` calls :func:`main` with its flavor. The
fake checks the flags coord must pass, does deterministic work in its working
directory (the worktree) and prints what the real CLI prints, quirks included
(docs/cli-agents.md lists them with their sources):

- every CLI answers ``--version`` (``FAKE_<FLAVOR>_VERSION`` overrides the number);
- ``claude`` refuses to start, exit 1, when ``CLAUDECODE`` is set (a nested session);
  with ``--verbose`` its JSON output is an array of messages ending in the result;
  its usage carries cache reads and cache writes;
- ``codex`` counts cached input inside ``input_tokens``; ``codex login status``
  exits 0 only when ``CODEX_API_KEY`` or ``FAKE_CODEX_LOGGED_IN`` is set;
- Cursor's ``agent`` spells usage in camelCase, refuses (printing a notice, exit 0)
  without ``--trust``/``--force``, and ``agent status`` says whether it is logged in.

Behaviour is chosen by ``FAKE_AGENT_MODE`` (or ``FAKE_CLAUDE_MODE`` /
``FAKE_CODEX_MODE`` / ``FAKE_CURSOR_MODE``) or by a marker ``[fake-agent:
MODE]`` in the prompt: ``ok`` (default), ``fail`` (exit 3, message on
stderr), ``is_error`` (the CLI's own error report), ``max_turns`` (claude/cursor:
an ``error_max_turns`` result with ``errors[]`` and no ``result``, exit 1),
``verbose`` (claude: the array output without the flag), ``retry`` (codex: two
``Reconnecting...`` error events, then a completed turn, exit 0), ``retry_fail``
(codex: retries that end in ``turn.failed``, exit 1), ``old_format`` (codex: the
pre-0.44 ``{"id", "msg"}`` events), ``snake_usage`` (cursor: the older snake_case
usage), ``linger`` (print the whole result, then never exit), ``hang`` (start a
child and sleep; pids go to ``FAKE_AGENT_PIDFILE``), ``garbage`` (non-JSON
output), ``leak`` (print the value of ``FAKE_SECRET_VAR`` and a key-shaped string).

Work done in ``ok`` mode: files from ``FAKE_AGENT_RECIPES`` (a JSON file
mapping task id → {"files": {path: text}, "say": text}); otherwise every file
the prompt's acceptance checks name, plus ``agent_notes/<task>.md``. Each
call is recorded in ``FAKE_AGENT_RECORD`` (a directory) when set.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

TASK_HEADER = re.compile(r"^## (\S+) — (.+)$", re.MULTILINE)
FILE_CHECK = re.compile(r"^- \[ \] file (\S+) exists$", re.MULTILINE)
MARKER = re.compile(r"\[fake-agent:\s*([a-z_]+)\]")


def _opt(argv: list[str], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv and argv.index(name) + 1 < len(argv) else None


def _usage_error(msg: str) -> None:
    sys.stderr.write(f"error: {msg}\n")
    sys.exit(2)


def _parse(flavor: str, argv: list[str]) -> tuple[str, dict[str, str | None]]:
    """Check the headless flags the real CLI needs; return the prompt and interesting options."""
    if flavor == "codex":
        if argv[:1] != ["exec"] or "--json" not in argv:
            _usage_error("codex must be called as `codex exec --json ...`")
        if _opt(argv, "--sandbox") != "workspace-write":
            _usage_error("expected --sandbox workspace-write")
        if not _opt(argv, "--output-last-message"):
            _usage_error("expected --output-last-message FILE")
        prompt = argv[-1]
    else:
        if "-p" not in argv or _opt(argv, "--output-format") != "json":
            _usage_error(f"{flavor} must be called with -p PROMPT --output-format json")
        prompt = _opt(argv, "-p") or ""
    opts = {k: _opt(argv, k) for k in ("--model", "--permission-mode", "--sandbox", "--output-last-message")}
    return prompt, opts


def _mode(flavor: str, prompt: str) -> str:
    marker = MARKER.search(prompt)
    return (os.environ.get(f"FAKE_{flavor.upper()}_MODE") or os.environ.get("FAKE_AGENT_MODE")
            or (marker.group(1) if marker else "ok"))


def _do_work(task: str, prompt: str, flavor: str) -> tuple[list[str], str]:
    recipes_path = os.environ.get("FAKE_AGENT_RECIPES")
    recipes = json.loads(Path(recipes_path).read_text()) if recipes_path else {}
    recipe = recipes.get(task)
    files: dict[str, str]
    if recipe is not None:
        files = dict(recipe.get("files", {}))
        say = recipe.get("say", f"Done: {task}.")
    else:
        files = {p: f"# {p}\n\nWritten by the fake {flavor} for {task}.\n" for p in FILE_CHECK.findall(prompt)}
        files[f"agent_notes/{task}.md"] = f"# {task}\n\nThe fake {flavor} read {len(prompt)} characters.\n"
        say = f"Done: {task}. Wrote {len(files)} file(s)."
    for rel, text in files.items():
        path = Path(rel)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return sorted(files), say


def _record(flavor: str, argv: list[str], task: str, stdin_closed: bool) -> None:
    folder = os.environ.get("FAKE_AGENT_RECORD")
    if not folder:
        return
    Path(folder).mkdir(parents=True, exist_ok=True)
    entry = {"flavor": flavor, "argv": argv, "cwd": os.getcwd(), "task": task, "stdin_closed": stdin_closed,
             "pgid_is_own": os.getpgid(0) == os.getpid()}
    (Path(folder) / f"{flavor}-{task}-{uuid.uuid4().hex[:6]}.json").write_text(json.dumps(entry))


def _hang() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    pidfile = os.environ.get("FAKE_AGENT_PIDFILE")
    if pidfile:
        Path(pidfile).write_text(f"{os.getpid()} {child.pid}\n")
    print('{"type": "thread.started", "thread_id": "hanging"}', flush=True)
    time.sleep(600)


VERSIONS = {"claude": "2.1.40 (Claude Code)", "codex": "codex-cli 0.58.0", "cursor": "2026.09.18-9a7762b"}
TRUST_REFUSAL = """\u26a0 Workspace Trust Required
  Cursor Agent can execute code and access files in this directory.
  To proceed, you can either:
    \u2022 Run 'agent' interactively to decide
    \u2022 Pass --trust, --yolo, or -f if you trust this directory
"""


def _version(flavor: str) -> None:
    number = os.environ.get(f"FAKE_{flavor.upper()}_VERSION")
    text = VERSIONS[flavor]
    if number:
        text = {"claude": f"{number} (Claude Code)", "codex": f"codex-cli {number}"}.get(flavor, number)
    print(text)
    sys.exit(0)


def _status(flavor: str) -> None:
    """``codex login status`` / ``agent status``."""
    key = {"codex": "CODEX_API_KEY", "cursor": "CURSOR_API_KEY"}[flavor]
    if os.environ.get(key) or os.environ.get(f"FAKE_{flavor.upper()}_LOGGED_IN"):
        print("Logged in using an API key" if os.environ.get(key) else "Logged in as person@example.com")
        sys.exit(0)
    print("Not logged in")
    sys.exit(1)


def _emit_codex_retries(n: int) -> None:
    for i in range(1, n + 1):
        print(json.dumps({"type": "error", "message": f"Reconnecting... {i}/5 (stream disconnected before "
                          "completion: websocket closed by server before response.completed)"}), flush=True)


def _emit_ok(flavor: str, say: str, files: list[str], opts: dict[str, str | None], mode: str = "ok",
             verbose: bool = False) -> None:
    session = str(uuid.uuid5(uuid.NAMESPACE_URL, say))
    if flavor == "codex":
        if mode == "old_format":
            for ev in ({"id": "0", "msg": {"type": "task_started"}},
                       {"id": "0", "msg": {"type": "agent_message", "message": say}},
                       {"id": "0", "msg": {"type": "task_complete"}}):
                print(json.dumps(ev), flush=True)
            return
        print(json.dumps({"type": "thread.started", "thread_id": session}), flush=True)
        print(json.dumps({"type": "turn.started"}), flush=True)
        if mode == "retry":
            _emit_codex_retries(2)
        events = [
            {"type": "item.completed", "item": {"id": "item_0", "type": "file_change", "status": "completed",
                                                "changes": [{"path": f, "kind": "add"} for f in files]}},
            {"type": "item.completed", "item": {"id": "item_1", "type": "agent_message", "text": say}},
            {"type": "turn.completed", "usage": {"input_tokens": 1200, "cached_input_tokens": 200,
                                                 "output_tokens": 300}},
        ]
        for ev in events:
            print(json.dumps(ev), flush=True)
        Path(str(opts["--output-last-message"])).write_text(say + "\n", encoding="utf-8")
        return
    obj = {"type": "result", "subtype": "success", "is_error": False, "duration_ms": 1500,
           "duration_api_ms": 1400, "result": say, "session_id": session}
    if flavor == "claude":
        obj.update(num_turns=3, total_cost_usd=float(os.environ.get("FAKE_CLAUDE_COST", "0.0125")),
                   usage={"input_tokens": 900, "output_tokens": 250, "cache_read_input_tokens": 100,
                          "cache_creation_input_tokens": 40})
    else:
        obj["request_id"] = "req-" + session[:8]
        obj["usage"] = ({"input_tokens": 700, "output_tokens": 150, "cache_read_input_tokens": 60}
                        if mode == "snake_usage" else
                        {"inputTokens": 700, "outputTokens": 150, "cacheReadTokens": 60, "cacheWriteTokens": 20})
    _print_result(flavor, obj, session, verbose)


def _print_result(flavor: str, obj: dict, session: str, verbose: bool) -> None:
    if flavor == "claude" and verbose:
        model = os.environ.get("FAKE_CLAUDE_MODEL", "claude-sonnet-4-5-20250929")
        messages = [{"type": "system", "subtype": "init", "session_id": session, "model": model,
                     "tools": ["Bash", "Edit", "Read", "Write"], "permissionMode": "acceptEdits"},
                    {"type": "assistant", "session_id": session,
                     "message": {"role": "assistant", "content": [{"type": "text", "text": "Working on it."}]}},
                    obj]
        print(json.dumps(messages), flush=True)
        return
    print(json.dumps(obj), flush=True)


def main(flavor: str) -> None:
    """Behave like the ``flavor`` CLI called headless."""
    argv = sys.argv[1:]
    if argv[:1] in (["--version"], ["-v"]):
        _version(flavor)
    if flavor == "claude" and os.environ.get("CLAUDECODE"):
        sys.stderr.write("Error: Claude Code cannot be launched inside another Claude Code session.\n"
                         "Nested sessions share runtime resources and will crash all active sessions.\n"
                         "To bypass this check, unset the CLAUDECODE environment variable.\n")
        sys.exit(1)
    if (flavor, argv[:2]) in (("codex", ["login", "status"]), ("cursor", ["status"])):
        _status(flavor)
    prompt, opts = _parse(flavor, argv)
    header = TASK_HEADER.search(prompt)
    task = header.group(1) if header else os.environ.get("COORD_TASK_ID", "task")
    stdin_closed = sys.stdin.read() == ""
    _record(flavor, argv, task, stdin_closed)
    mode = _mode(flavor, prompt)
    verbose = "--verbose" in argv or mode == "verbose"
    if flavor == "cursor" and not {"--trust", "--force", "--yolo", "-f"} & set(argv):
        sys.stdout.write(TRUST_REFUSAL)  # the real CLI refuses and exits 0
        sys.exit(0)
    if mode == "hang":
        _hang()
    elif mode == "fail":
        sys.stderr.write(f"{flavor}: simulated crash while working on {task}\n")
        sys.exit(3)
    elif mode == "garbage":
        print("Thinking...\n<<not json at all>>\n{\"half\": ", flush=True)
    elif mode == "leak":
        secret = os.environ.get(os.environ.get("FAKE_SECRET_VAR", "OPENAI_API_KEY"), "")
        print(f"debug: using key {secret} and sk-ant-api03-{'x' * 30}", flush=True)
        sys.stderr.write(f"auth header: Bearer {secret}\n")
        files, say = _do_work(task, prompt, flavor)
        _emit_ok(flavor, say, files, opts)
    elif mode == "max_turns" and flavor != "codex":
        obj = {"type": "result", "subtype": "error_max_turns", "is_error": True, "num_turns": 31,
               "session_id": "s-turns", "errors": ["Reached maximum number of turns (30)"]}
        if flavor == "claude":
            obj["total_cost_usd"] = 0.004
        _print_result(flavor, obj, "s-turns", verbose)
        sys.exit(1)
    elif mode == "retry_fail" and flavor == "codex":
        print(json.dumps({"type": "thread.started", "thread_id": "t-retry"}), flush=True)
        print(json.dumps({"type": "turn.started"}), flush=True)
        _emit_codex_retries(5)
        print(json.dumps({"type": "turn.failed", "error": {"message": "stream disconnected before completion: "
                                                                      "retries exhausted"}}), flush=True)
        sys.exit(1)
    elif mode == "linger":
        files, say = _do_work(task, prompt, flavor)
        _emit_ok(flavor, say, files, opts, mode, verbose)
        pidfile = os.environ.get("FAKE_AGENT_PIDFILE")
        if pidfile:
            Path(pidfile).write_text(f"{os.getpid()}\n")
        time.sleep(600)  # a known upstream bug: the result is printed, the process never exits
    elif mode == "is_error":
        if flavor == "codex":
            print(json.dumps({"type": "thread.started", "thread_id": "t-err"}))
            print(json.dumps({"type": "turn.failed", "error": {"message": "model refused the task"}}))
            sys.exit(1)
        print(json.dumps({"type": "result", "subtype": "error_during_execution", "is_error": True,
                          "result": "model refused the task", "session_id": "s-err",
                          "total_cost_usd": 0.002}))
    elif mode == "switch_branch":  # the work lands on a branch of the agent's own making
        files, say = _do_work(task, prompt, flavor)
        subprocess.run(["git", "checkout", "-q", "-b", f"agent-own-{task}"], check=True)
        subprocess.run(["git", "add", "-A"], check=True)
        subprocess.run(["git", "-c", "user.name=agent", "-c", "user.email=agent@example.invalid", "commit", "-q",
                        "-m", "agent's own commit"], check=True)
        _emit_ok(flavor, say, files, opts, mode, verbose)
    else:
        files, say = _do_work(task, prompt, flavor)
        _emit_ok(flavor, say, files, opts, mode, verbose)
