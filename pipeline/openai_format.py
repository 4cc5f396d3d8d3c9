"""OpenAI chat fine-tuning files: a per-line validator, a token estimator and step ``validate_openai``.

Rules checked (OpenAI supervised chat fine-tuning format and the chat message schema):

- each line is a JSON object whose keys are among ``messages``, ``tools``,
  ``parallel_tool_calls``, ``functions`` — anything else (notably a top-level
  ``weight``) is an error; ``messages`` is a non-empty list;
- roles are ``system``, ``user``, ``assistant``, ``tool`` and legacy ``function``, each
  with its own allowed keys; content is a string or a list of content parts (text;
  ``image_url`` in user messages only, at most 10 images per example; ``refusal`` in
  assistant messages); empty content counts as missing unless the assistant calls a tool;
- ``weight`` only on assistant messages and only 0 or 1;
- assistant ``tool_calls``: ``[{"id", "type": "function", "function": {"name",
  "arguments": <JSON string>}}]``; every call answered by a ``tool`` message with its
  ``tool_call_id`` before the conversation moves on; legacy ``function_call`` likewise;
- ``tools`` / ``functions`` definitions are well formed; function names match
  ``^[a-zA-Z0-9_-]{1,64}$``;
- at least one assistant message per example; at least ``min_examples`` (10) examples;
- the estimated tokens of an example fit the model's training context (examples over
  it would be truncated, cutting the answer that is being trained).

Token estimate (no tokenizer needed, documented heuristic): ``ceil(chars / 4)`` for
every text (content, names, call names and arguments, tool definitions as JSON) +
3 per message + 1 per ``name`` + 3 for the reply primer; images count 85 tokens.

Step metrics: ``files``, ``examples``, ``errors``, ``warnings``, ``files_invalid``,
``tokens_estimated``, ``max_example_tokens``.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

from pipeline._io import Rejects, atomic_write_json, data_files, iter_jsonl
from pipeline._step import MetricValue, StepContext, StepResult, StepRun, WsPath, step
from pipeline.errors import InputError

log = logging.getLogger(__name__)

DEFAULT_MODEL = "gpt-4o-mini-2024-07-18"
TOP_LEVEL_KEYS = ("messages", "tools", "parallel_tool_calls", "functions")
ROLE_KEYS: dict[str, frozenset[str]] = {
    "system": frozenset({"role", "content", "name"}),
    "user": frozenset({"role", "content", "name"}),
    "assistant": frozenset({"role", "content", "name", "weight", "tool_calls", "function_call", "refusal"}),
    "tool": frozenset({"role", "content", "tool_call_id"}),
    "function": frozenset({"role", "content", "name"}),
}
PART_TYPES: dict[str, frozenset[str]] = {
    "system": frozenset({"text"}), "user": frozenset({"text", "image_url"}),
    "assistant": frozenset({"text", "refusal"}), "tool": frozenset({"text"}), "function": frozenset(),
}
MAX_IMAGES_PER_EXAMPLE = 10
CONTEXT_LIMITS: tuple[tuple[str, int], ...] = (
    # Training-example limits per model family, most specific prefix first.
    ("gpt-4o-mini", 65_536), ("gpt-4o", 65_536), ("gpt-3.5-turbo-0613", 4_096),
    ("gpt-3.5-turbo", 16_385), ("gpt-4-0613", 8_192),
)
CHARS_PER_TOKEN, TOKENS_PER_MESSAGE, TOKENS_PER_NAME, REPLY_PRIMER, IMAGE_TOKENS = 4, 3, 1, 3, 85
DEFAULT_IN_DIR = WsPath("data/sft/openai")
DEFAULT_REPORT = WsPath("reports/openai_validation.json")
_FUNCTION_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


@dataclass(frozen=True)
class LineError:
    """One problem: line (0 for the whole file), field path, code and message."""

    line: int
    field: str
    code: str
    message: str


@dataclass
class FileReport:
    """Validation result of one file (samples are bounded; counts are complete)."""

    path: str
    model: str
    context_limit: int | None
    examples: int = 0
    errors: int = 0
    warnings: int = 0
    tokens_estimated: int = 0
    max_example_tokens: int = 0
    error_counts: dict[str, int] = field(default_factory=dict)
    error_samples: list[LineError] = field(default_factory=list)
    warning_samples: list[LineError] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        """True when the file would pass every checked rule."""
        return self.errors == 0

    def to_dict(self) -> dict[str, Any]:
        """JSON form for reports."""
        return {**asdict(self), "valid": self.valid}


def base_model(model: str) -> str:
    """``ft:gpt-4o-mini-2024-07-18:org::id`` → ``gpt-4o-mini-2024-07-18``; other names unchanged."""
    return model.split(":")[1] if model.startswith("ft:") else model


def context_limit(model: str) -> int | None:
    """Training-example token limit of ``model``'s family, or None when unknown."""
    name = base_model(model)
    return next((limit for prefix, limit in CONTEXT_LIMITS if name.startswith(prefix)), None)


def _text_tokens(text: str) -> int:
    return -(-len(text) // CHARS_PER_TOKEN)


def estimate_tokens(example: Any) -> int:
    """Estimated tokens of one example (see module docstring); tolerant of malformed input."""
    if not isinstance(example, dict):
        return 0
    total = REPLY_PRIMER
    for key in ("tools", "functions"):
        if example.get(key):
            total += _text_tokens(orjson.dumps(example[key]).decode())
    messages = example.get("messages")
    if not isinstance(messages, list):
        return total
    for msg in messages:
        if not isinstance(msg, dict):
            continue
        total += TOKENS_PER_MESSAGE
        content = msg.get("content")
        if isinstance(content, str):
            total += _text_tokens(content)
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, dict):
                    text = part.get("text") or part.get("refusal")
                    total += _text_tokens(text) if isinstance(text, str) else IMAGE_TOKENS
        if isinstance(msg.get("name"), str):
            total += TOKENS_PER_NAME + _text_tokens(msg["name"])
        calls = msg.get("tool_calls")
        fns = [c.get("function") for c in calls if isinstance(c, dict)] if isinstance(calls, list) else []
        fns.append(msg.get("function_call"))
        for fn in fns:
            if isinstance(fn, dict):
                total += sum(_text_tokens(v) for v in (fn.get("name"), fn.get("arguments")) if isinstance(v, str))
    return total


class _Example:
    """Checks one parsed line, calling ``add(field, code, message, warning)`` per finding."""

    def __init__(self, add: Any) -> None:
        self.add = add
        self.tool_names: set[str] = set()

    def check(self, obj: Any) -> None:
        if not isinstance(obj, dict):
            self.add("(line)", "not_object", f"each line must be a JSON object, got {type(obj).__name__}")
            return
        for key in obj:
            if key == "weight":
                self.add("weight", "unknown_key", "top-level 'weight' is not allowed: OpenAI accepts only "
                         "messages, tools, parallel_tool_calls, functions; put weight 0 or 1 on assistant messages")
            elif key not in TOP_LEVEL_KEYS:
                self.add(key, "unknown_key", f"unknown top-level key {key!r}; allowed: {', '.join(TOP_LEVEL_KEYS)}")
        self._definitions(obj)
        if "parallel_tool_calls" in obj and not isinstance(obj["parallel_tool_calls"], bool):
            self.add("parallel_tool_calls", "type", "parallel_tool_calls must be true or false")
        messages = obj.get("messages")
        if messages is None:
            self.add("messages", "missing_messages", "'messages' is required")
        elif not isinstance(messages, list) or not messages:
            self.add("messages", "messages_type", "'messages' must be a non-empty list")
        else:
            self._messages(messages)

    def _definitions(self, obj: dict[str, Any]) -> None:
        for key in ("tools", "functions"):
            if key not in obj:
                continue
            defs = obj[key]
            if not isinstance(defs, list):
                self.add(key, "definitions", f"{key!r} must be a list")
                continue
            for i, d in enumerate(defs):
                fn = d.get("function") if key == "tools" and isinstance(d, dict) else d
                if key == "tools" and (not isinstance(d, dict) or d.get("type") != "function"):
                    self.add(f"tools[{i}].type", "definitions", "each tool must be {'type': 'function', 'function': {...}}")
                    continue
                where = f"tools[{i}].function" if key == "tools" else f"functions[{i}]"
                name = fn.get("name") if isinstance(fn, dict) else None
                if not isinstance(fn, dict) or not isinstance(name, str) or not _FUNCTION_NAME.match(name):
                    self.add(f"{where}.name", "definitions", "function name must match ^[a-zA-Z0-9_-]{1,64}$")
                    continue
                if "parameters" in fn and not isinstance(fn["parameters"], dict):
                    self.add(f"{where}.parameters", "definitions", "parameters must be a JSON Schema object")
                self.tool_names.add(name)

    def _messages(self, messages: list[Any]) -> None:
        pending: dict[str, str] = {}  # unanswered call id → path of the assistant message
        assistants = trainable = images = 0
        for i, msg in enumerate(messages):
            path = f"messages[{i}]"
            if not isinstance(msg, dict):
                self.add(path, "message_type", "each message must be an object")
                continue
            role = msg.get("role")
            if role not in ROLE_KEYS:
                self.add(f"{path}.role", "invalid_role" if "role" in msg else "missing_role",
                         f"role must be one of {', '.join(ROLE_KEYS)}, got {role!r}")
                continue
            if role != "tool" and pending:
                self._unanswered(pending)
            for key in msg:
                if key not in ROLE_KEYS[role]:
                    code = "weight_not_allowed" if key == "weight" else "message_unknown_key"
                    hint = "weight is only allowed on assistant messages" if key == "weight" else \
                        f"unknown key {key!r} for a {role} message; allowed: {', '.join(sorted(ROLE_KEYS[role]))}"
                    self.add(f"{path}.{key}", code, hint)
            if "name" in msg and (not isinstance(msg["name"], str) or not msg["name"]):
                self.add(f"{path}.name", "name_type", "name must be a non-empty string")
            calls = role == "assistant" and ("tool_calls" in msg or msg.get("function_call") is not None)
            images += self._content(msg.get("content"), role, path, required=not calls)
            if role == "assistant":
                assistants += 1
                trainable += self._weight(msg, path)
                if "tool_calls" in msg:
                    pending.update(self._tool_calls(msg["tool_calls"], path))
                if msg.get("function_call") is not None:
                    self._function(msg["function_call"], f"{path}.function_call")
            elif role == "tool":
                cid = msg.get("tool_call_id")
                if not isinstance(cid, str) or not cid:
                    self.add(f"{path}.tool_call_id", "tool_call_id", "tool messages need a tool_call_id string")
                elif cid not in pending:
                    self.add(f"{path}.tool_call_id", "tool_call_id",
                             f"tool_call_id {cid!r} answers no pending tool call of a preceding assistant message")
                else:
                    del pending[cid]
            elif role == "function" and not isinstance(msg.get("name"), str):
                self.add(f"{path}.name", "name_type", "function messages need the function's name")
        if pending:
            self._unanswered(pending)
        if assistants == 0:
            self.add("messages", "no_assistant", "an example needs at least one assistant message")
        elif trainable == 0:
            self.add("messages", "no_trainable", "every assistant message has weight 0; nothing to train on",
                     warning=True)
        if images > MAX_IMAGES_PER_EXAMPLE:
            self.add("messages", "too_many_images", f"{images} images; at most {MAX_IMAGES_PER_EXAMPLE} per example")

    def _unanswered(self, pending: dict[str, str]) -> None:
        for cid, path in pending.items():
            self.add(path, "tool_call_id", f"tool call {cid!r} has no tool message answering it")
        pending.clear()

    def _content(self, content: Any, role: str, path: str, *, required: bool) -> int:
        """Check content; return the number of images it holds."""
        if content is None or content == "" or content == []:
            if required:
                self.add(f"{path}.content", "missing_content", f"{role} message needs non-empty content")
            return 0
        if isinstance(content, str):
            return 0
        if not isinstance(content, list):
            self.add(f"{path}.content", "content_type", "content must be a string or a list of content parts")
            return 0
        images = 0
        for j, part in enumerate(content):
            ppath = f"{path}.content[{j}]"
            kind = part.get("type") if isinstance(part, dict) else None
            if kind not in PART_TYPES[role]:
                allowed = ", ".join(sorted(PART_TYPES[role])) or "none (use a string)"
                self.add(ppath, "content_part", f"content part type {kind!r} is not supported for fine-tuning "
                         f"in a {role} message; allowed: {allowed}")
            elif kind == "image_url":
                images += 1
                url = part.get("image_url")
                if not isinstance(url, dict) or not isinstance(url.get("url"), str):
                    self.add(f"{ppath}.image_url", "content_part", "image_url must be {'url': str}")
            elif not isinstance(part.get(kind), str) or not part[kind]:
                self.add(f"{ppath}.{kind}", "content_part", f"{kind} part needs a non-empty string {kind!r}")
        return images

    def _weight(self, msg: dict[str, Any], path: str) -> int:
        """Check an assistant weight; return 1 when the message is trained on."""
        if "weight" not in msg:
            return 1
        w = msg["weight"]
        if isinstance(w, bool) or not isinstance(w, int | float) or w not in (0, 1):
            self.add(f"{path}.weight", "weight_value", f"weight must be 0 or 1, got {w!r} "
                     "(fractional weights are not supported; sample examples instead)")
            return 1
        return int(w)

    def _tool_calls(self, calls: Any, path: str) -> dict[str, str]:
        if not isinstance(calls, list) or not calls:
            self.add(f"{path}.tool_calls", "tool_calls_shape", "tool_calls must be a non-empty list")
            return {}
        ids: dict[str, str] = {}
        for k, call in enumerate(calls):
            cpath = f"{path}.tool_calls[{k}]"
            if not isinstance(call, dict) or set(call) - {"id", "type", "function"}:
                self.add(cpath, "tool_calls_shape", "a tool call is {'id', 'type': 'function', 'function': {...}}")
                continue
            cid = call.get("id")
            if not isinstance(cid, str) or not cid or cid in ids:
                self.add(f"{cpath}.id", "tool_calls_shape", "each tool call needs a unique non-empty string id")
            else:
                ids[cid] = cpath
            if call.get("type") != "function":
                self.add(f"{cpath}.type", "tool_calls_shape", f"type must be 'function', got {call.get('type')!r}")
            self._function(call.get("function"), f"{cpath}.function")
        return ids

    def _function(self, fn: Any, path: str) -> None:
        if not isinstance(fn, dict):
            self.add(path, "tool_calls_shape", "must be an object with 'name' and 'arguments'")
            return
        name, args = fn.get("name"), fn.get("arguments")
        if not isinstance(name, str) or not _FUNCTION_NAME.match(name):
            self.add(f"{path}.name", "tool_calls_shape", "function name must match ^[a-zA-Z0-9_-]{1,64}$")
        elif self.tool_names and name not in self.tool_names:
            self.add(f"{path}.name", "unknown_tool", f"{name!r} is not among the example's tools", warning=True)
        if not isinstance(args, str):
            self.add(f"{path}.arguments", "tool_calls_shape",
                     f"arguments must be a string holding JSON, got {type(args).__name__}")
            return
        try:
            orjson.loads(args)
        except orjson.JSONDecodeError:
            self.add(f"{path}.arguments", "tool_calls_shape", "arguments must be valid JSON")


class _JsonErrors(Rejects):
    """A rejects sink for ``iter_jsonl`` that records unparseable lines in the report instead of a file."""

    def __init__(self, path: Path, report: _Collector) -> None:
        super().__init__(path)
        self.report = report

    def add(self, *, source: Path | str, line: int, reason: str, raw: str | bytes | None = None,
            field: str | None = None) -> None:
        self.count += 1
        self.report.add(line, "(line)", "invalid_json", reason)
        self.report.report.examples += 1


class _Collector:
    def __init__(self, report: FileReport, max_samples: int) -> None:
        self.report, self.max_samples = report, max_samples
        self.counts: Counter[str] = Counter()

    def add(self, line: int, path: str, code: str, message: str, warning: bool = False) -> None:
        r = self.report
        samples = r.warning_samples if warning else r.error_samples
        if warning:
            r.warnings += 1
        else:
            r.errors += 1
            self.counts[code] += 1
        if len(samples) < self.max_samples:
            samples.append(LineError(line, path, code, message))


def validate_openai_file(path: Path, *, model: str = DEFAULT_MODEL, min_examples: int = 10,
                         max_samples: int = 50) -> FileReport:
    """Validate one OpenAI chat fine-tuning JSONL file, streaming; see the module docstring for rules."""
    path = Path(path)
    limit = context_limit(model)
    report = FileReport(str(path), model, limit)
    col = _Collector(report, max_samples)
    if limit is None:
        col.add(0, "(file)", "unknown_model", f"no context limit known for {model!r}; token limit not checked",
                warning=True)
    for lineno, obj in iter_jsonl(path, _JsonErrors(path, col)):
        report.examples += 1
        checker = _Example(lambda f, c, m, warning=False, n=lineno: col.add(n, f, c, m, warning))
        checker.check(obj)
        tokens = estimate_tokens(obj)
        report.tokens_estimated += tokens
        report.max_example_tokens = max(report.max_example_tokens, tokens)
        if limit is not None and tokens > limit:
            col.add(lineno, "(example)", "too_many_tokens",
                    f"~{tokens} tokens exceeds the {limit}-token training limit of {model}; it would be truncated")
    if report.examples < min_examples:
        col.add(0, "(file)", "too_few_examples", f"{report.examples} examples; fine-tuning needs at least {min_examples}")
    report.error_counts = dict(sorted(col.counts.items()))
    return report


@step("validate_openai", limits={"min_examples": (0, None)})
def validate_openai(ctx: StepContext, *, in_dir: WsPath = DEFAULT_IN_DIR,
                    agents: list[str] | None = None,
                    model: str = DEFAULT_MODEL, min_examples: int = 10,
                    report: WsPath = DEFAULT_REPORT) -> StepResult:
    """Validate every OpenAI training file (or those of ``agents``) and write a bounded JSON report."""
    directory = ctx.path(in_dir)
    files = [directory / f"{a}.jsonl" for a in agents] if agents is not None else data_files(directory)
    missing = [f for f in files if not f.exists()]
    if missing:
        raise InputError("training file not found", path=ctx.rel(missing[0]))
    if not files:
        raise InputError("no .jsonl training files", path=ctx.rel(directory))
    out = ctx.path(report)
    params = {"in_dir": str(in_dir), "agents": agents, "model": model, "min_examples": min_examples,
              "report": str(report)}
    run = StepRun(ctx, "validate_openai", params, inputs=files, outputs=[out])
    if (cached := run.cached()) is not None:
        return cached
    reports = []
    for k, f in enumerate(files):
        ctx.report(f"validating {ctx.rel(f)}", k / len(files))
        r = validate_openai_file(f, model=model, min_examples=min_examples)
        r.path = ctx.rel(f)
        reports.append(r)
        log.info("validate_openai: %s — %d examples, %d errors", r.path, r.examples, r.errors)
    metrics: dict[str, MetricValue] = {"files": len(reports), "examples": sum(r.examples for r in reports),
               "errors": sum(r.errors for r in reports), "warnings": sum(r.warnings for r in reports),
               "files_invalid": sum(not r.valid for r in reports),
               "tokens_estimated": sum(r.tokens_estimated for r in reports),
               "max_example_tokens": max(r.max_example_tokens for r in reports)}
    atomic_write_json(out, {"schema_version": 1, "model": model, "context_limit": context_limit(model),
                            "estimator": {"chars_per_token": CHARS_PER_TOKEN, "per_message": TOKENS_PER_MESSAGE,
                                          "per_name": TOKENS_PER_NAME, "reply_primer": REPLY_PRIMER},
                            "totals": metrics, "files": [r.to_dict() for r in reports]})
    run.record(out)
    return run.finish(metrics)
