"""build_sft: cross-agent training sets in Unsloth/ShareGPT and OpenAI chat form, plus held-out items.

For every target agent T and every source agent S whose compatibility weight w = matrix[T][S]
is positive (see :mod:`pipeline.compat`), each non-held-out ADP trajectory of S becomes
``variants`` Unsloth rows in ``<out_dir>/unsloth/T.jsonl`` with ``weight`` = w.

Prompt variants (augmentation). Each example is rendered under ``variants`` different system
prompts *of the target agent*: variant v words T's role with opener ``v % 4`` and closer
``(v + v // 4) % 4`` of the templates below (16 distinct prompts at most). Variant 0 of an
agent's own example keeps the example's original system prompt. With 5 agents × 1,333
examples, every pair used and 3 variants this gives 5 × 5 × 1,200 × 3 ≈ 90k rows.

Held-out split. A base id is held out when ``u("holdout", seed, base_id) < holdout_fraction``;
``u`` maps blake2b of the joined parts to [0, 1). The decision depends on the base id alone, so
the same examples are held out for every target: a held-out example of A goes once (weight 1.0,
variant 0) to ``<heldout_dir>/A.jsonl`` and into no training file at all.

Conversation mapping (ADP → turns via :func:`pipeline.adp.turns.trajectory_to_turns` → ShareGPT):
user → ``human``; assistant message → ``gpt``; a tool call → ``function_call`` whose value is the
JSON text ``{"name": …, "arguments": {…}}``, preceded by a ``gpt`` message when the call carries a
non-empty thought; a code call → ``function_call`` to the tool ``run_code`` with arguments
``{"language", "code"}``; a tool result → ``observation``. ShareGPT pairs results with calls by
position, so a trajectory whose results answer its calls out of order is rejected rather than
mispaired. Row ids are ``T<-<base id>#<variant>``. Bad ADP lines of agent S (invalid JSON, schema
errors, duplicate ids, a foreign ``details.agent_name``) go to
``<out_dir>/unsloth/S.jsonl.rejects.jsonl`` with line and reason.

Streaming: each source file is read once, line by line, and every row is written at once to the
files of all targets that use that source (2 open writers per target), so memory does not grow
with the data; only 16-byte digests of the source's ids are kept to catch duplicates.

OpenAI file (``<out_dir>/openai/T.jsonl``): ``{"messages": [...]}`` and nothing else. A gpt message
followed by function calls becomes one assistant message with ``content`` and ``tool_calls``
(``{"id", "type": "function", "function": {"name", "arguments": <JSON string>}}``); ids are
``call_000001``… per row and each observation answers the oldest unanswered call as a
``role: "tool"`` message with that ``tool_call_id`` (an observation with no open call becomes a
user message). OpenAI only honours per-message weights of 0 or 1, so a fractional row weight w
is applied by deterministic sampling: the row is written iff ``u(seed, row id) < w`` (weight ≥ 1
always, 0 never). Expected kept share is w; the same seed keeps the same rows.

Metrics: ``rows`` (Unsloth rows), ``openai_rows``, ``heldout_rows``, ``examples`` (valid source
trajectories, held-out ones included), ``targets``, ``pairs_used`` (target/source pairs with
weight > 0, diagonal included), ``weight_min`` / ``weight_max`` (over written rows; None when there are none), ``rejects`` (bad ADP
lines), ``tool_rows`` (Unsloth rows with a function call), ``rows_<agent>`` and
``openai_rows_<agent>`` per target.
"""

from __future__ import annotations

import hashlib
import logging
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, TypedDict

import orjson

from coordinator import MetricValue, StepContext, StepResult, StepRun, WsPath, step
from coordinator.core.errors import InputError, ParameterError, TaskError
from coordinator.core.io import JsonlWriter, Rejects, data_files, iter_jsonl
from coordinator.core.step_run import canonical_json
from pipeline._spill import SpillMap
from pipeline.adp.turns import trajectory_to_turns
from pipeline.compat import AGENT_NAME, CompatibilityMatrix, resolve_matrix

log = logging.getLogger(__name__)

From = Literal["system", "human", "gpt", "function_call", "observation"]
ShareGPTMessage = TypedDict("ShareGPTMessage", {"from": From, "value": str})


class UnslothRow(TypedDict):
    """One training row (docs/formats.md, "Training sets")."""

    id: str
    conversations: list[ShareGPTMessage]
    weight: float
    target_agent: str
    source_agent: str
    base_id: str
    category: str | None
    difficulty: str | None
    variant: int


CODE_TOOL = "run_code"
"""Tool name code calls are rendered as (arguments: language, code)."""
MAX_VARIANTS = 16
DEFAULT_ADP_DIR, DEFAULT_OUT_DIR = WsPath("data/adp"), WsPath("data/sft")
DEFAULT_HELDOUT_DIR = WsPath("data/heldout")

_OPENERS = (
    "You are the {name} agent, {role}.",
    "Role: {name} agent. You work as {role}.",
    "You act as coord's {name} agent: {role}.",
    "As the team's {name} agent you are {role}.",
)
_CLOSERS = (
    "Answer the request directly and accurately.",
    "Be precise, state your assumptions and use tools when they help.",
    "Keep the answer structured and concise, and end with a clear conclusion.",
    "Explain your reasoning briefly, then give the final answer.",
)


def system_prompt(agent: str, role: str, variant: int) -> str:
    """The target agent's system prompt for a prompt variant (0 ≤ variant < 16)."""
    opener = _OPENERS[variant % len(_OPENERS)]
    closer = _CLOSERS[(variant + variant // len(_OPENERS)) % len(_CLOSERS)]
    return opener.format(name=agent, role=role) + " " + closer


def _unit(*parts: object) -> float:
    """A stable number in [0, 1) from the given parts (never Python's salted hash())."""
    digest = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def in_holdout(base_id: str, fraction: float, seed: int) -> bool:
    """Whether an example is held out (the same answer for every target agent)."""
    return fraction > 0 and _unit("holdout", seed, base_id) < fraction


def keep_for_openai(row_id: str, weight: float, seed: int) -> bool:
    """Deterministic weighted sampling: keep a row of weight w with probability w."""
    if weight >= 1.0:
        return True
    return weight > 0 and _unit(seed, row_id) < weight


def turns_to_conversation(turns: Sequence[Mapping[str, Any]]) -> tuple[str | None, list[ShareGPTMessage]]:
    """Split turns into the original system prompt and the ShareGPT conversation after it."""
    system: str | None = None
    conv: list[ShareGPTMessage] = []
    open_calls: deque[str] = deque()
    for i, turn in enumerate(turns):
        role, content = turn.get("role"), turn.get("content") or ""
        if role == "system":
            if conv:
                raise ValueError(f"turn {i}: system turn after the conversation started")
            system = content if system is None else f"{system}\n\n{content}"
        elif role == "user":
            conv.append({"from": "human", "value": content})
        elif role == "tool":
            answered = turn.get("tool_call_id")
            # ShareGPT pairs results with calls by position, so results must come in call order
            if open_calls and answered is not None and answered != open_calls[0]:
                raise ValueError(f"turn {i}: result for {answered!r} comes before the result for "
                                 f"{open_calls[0]!r}; positional formats cannot pair it")
            if open_calls:
                open_calls.popleft()
            conv.append({"from": "observation", "value": content})
        elif role == "assistant":
            call = _call_value(turn)
            if call is None:
                conv.append({"from": "gpt", "value": content})
                continue
            if content.strip():
                conv.append({"from": "gpt", "value": content})
            conv.append({"from": "function_call", "value": call[1]})
            open_calls.append(call[0])
        else:
            raise ValueError(f"turn {i}: unknown role {role!r}")
    if not any(m["from"] in ("gpt", "function_call") for m in conv):
        raise ValueError("no assistant turn")
    return system, conv


def _call_value(turn: Mapping[str, Any]) -> tuple[str, str] | None:
    """``(call id, function_call JSON text)`` of an assistant turn that calls something."""
    if (tc := turn.get("tool_call")) is not None:
        call_id, call = tc["id"], {"name": tc["name"], "arguments": tc.get("arguments") or {}}
    elif (cc := turn.get("code_call")) is not None:
        call_id = cc["id"]
        call = {"name": CODE_TOOL, "arguments": {"language": cc["language"], "code": cc["code"]}}
    else:
        return None
    return call_id, orjson.dumps(call).decode()


def unsloth_to_openai(row: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Convert one Unsloth row to an OpenAI chat fine-tuning row (``messages`` only)."""
    messages: list[dict[str, Any]] = []
    open_calls: deque[str] = deque()
    n_calls = 0
    for m in row["conversations"]:
        frm, value = m["from"], m["value"]
        if frm == "function_call":
            call = orjson.loads(value)
            n_calls += 1
            call_id = f"call_{n_calls:06d}"
            args = call.get("arguments", {})
            tool_call = {"id": call_id, "type": "function", "function": {
                "name": call["name"], "arguments": args if isinstance(args, str)
                else orjson.dumps(args).decode()}}
            open_calls.append(call_id)
            last = messages[-1] if messages else None
            # A thought (or an earlier call with no result yet) and this call are one assistant turn.
            if last is not None and last["role"] == "assistant":
                last.setdefault("tool_calls", []).append(tool_call)
            else:
                messages.append({"role": "assistant", "tool_calls": [tool_call]})
        elif frm == "observation" and open_calls:
            messages.append({"role": "tool", "tool_call_id": open_calls.popleft(), "content": value})
        elif frm == "gpt":
            messages.append({"role": "assistant", "content": value})
        elif frm == "system":
            messages.append({"role": "system", "content": value})
        else:  # human, or an observation that answers no call
            messages.append({"role": "user", "content": value})
    return {"messages": messages}


class OpenAIWriter:
    """Atomic OpenAI JSONL writer that samples Unsloth rows by weight and converts them."""

    def __init__(self, path: Path, *, seed: int) -> None:
        self.seed = seed
        self.input_rows = 0
        self._writer = JsonlWriter(path)

    def __enter__(self) -> OpenAIWriter:
        self._writer.__enter__()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._writer.__exit__(exc_type, exc, tb)

    def add(self, row: Mapping[str, Any]) -> bool:
        """Offer one Unsloth row; returns whether the sample kept it."""
        self.input_rows += 1
        if not keep_for_openai(row["id"], float(row.get("weight", 1.0)), self.seed):
            return False
        self._writer.write_obj(unsloth_to_openai(row))
        return True

    @property
    def rows(self) -> int:
        """Rows written so far."""
        return self._writer.count

    def summary(self) -> dict[str, Any]:
        """Counts and digest of the file (call after the block closed)."""
        return {"path": str(self._writer.path), "input_rows": self.input_rows, "rows": self.rows,
                "sampled_out": self.input_rows - self.rows, "sha256": self._writer.sha256,
                "bytes": self._writer.bytes}


def write_openai_rows(rows: Iterable[Mapping[str, Any]], out_path: Path, *, seed: int) -> dict[str, Any]:
    """Sample and convert Unsloth rows into an OpenAI file, atomically; return counts and sha256."""
    with OpenAIWriter(Path(out_path), seed=seed) as writer:
        for row in rows:
            writer.add(row)
    return writer.summary()


@dataclass(slots=True)
class Example:
    """One valid source trajectory, converted once and rendered for every target and variant."""

    base_id: str
    source_agent: str
    category: str | None
    difficulty: str | None
    original_system: str | None
    conversation: list[ShareGPTMessage]
    has_tool: bool

    def render(self, target: str, variant: int, weight: float, prompt: str) -> UnslothRow:
        """The Unsloth row of this example for ``target`` under ``prompt``."""
        return {"id": f"{target}<-{self.base_id}#{variant}",
                "conversations": [{"from": "system", "value": prompt}, *self.conversation],
                "weight": weight, "target_agent": target, "source_agent": self.source_agent,
                "base_id": self.base_id, "category": self.category, "difficulty": self.difficulty,
                "variant": variant}


def example_from_trajectory(traj: Any, agent: str) -> Example:
    """Validate one ADP trajectory of ``agent`` and convert it; raises ValueError when unusable."""
    if not isinstance(traj, dict):
        raise ValueError("trajectory is not a JSON object")
    base_id = traj.get("id")
    if not isinstance(base_id, str) or not base_id:
        raise ValueError("missing or empty 'id'")
    details = traj.get("details") or {}
    named = details.get("agent_name")
    if named is not None and named != agent:
        raise ValueError(f"details.agent_name is {named!r} in the file of agent {agent!r}")
    system, conv = turns_to_conversation(trajectory_to_turns(traj))
    return Example(base_id, agent, details.get("task_category"), details.get("difficulty"),
                   system or None, conv,
                   any(m["from"] == "function_call" for m in conv))


def read_examples(path: Path, agent: str, rejects: Rejects) -> Iterator[Example]:
    """Stream the valid examples of one ADP file; bad or duplicate lines go to ``rejects``."""
    with SpillMap[bytes, int]() as seen:  # bounded: spills to disk past a cap
        yield from _unique_examples(path, agent, rejects, seen)


def _unique_examples(path: Path, agent: str, rejects: Rejects,
                     seen: SpillMap[bytes, int]) -> Iterator[Example]:
    for lineno, traj in iter_jsonl(path, rejects):
        try:
            ex = example_from_trajectory(traj, agent)
        except (TaskError, InputError, ParameterError, ValueError, TypeError, KeyError) as e:
            rejects.add(source=path, line=lineno, reason=str(e) or type(e).__name__,
                        raw=orjson.dumps(traj))
            continue
        key = hashlib.blake2b(ex.base_id.encode(), digest_size=16).digest()
        if key in seen:
            rejects.add(source=path, line=lineno, field="id", raw=orjson.dumps(traj),
                        reason=f"duplicate id {ex.base_id!r}")
            continue
        seen.put(key, 1)
        yield ex


@dataclass
class _Tally:
    """Running counts for the metrics (bounded: a few numbers per target)."""

    rows: dict[str, int]
    examples: int = 0
    heldout: int = 0
    rejects: int = 0
    tool_rows: int = 0
    weight_min: float | None = None
    weight_max: float | None = None

    def saw_weight(self, w: float) -> None:
        self.weight_min = w if self.weight_min is None else min(self.weight_min, w)
        self.weight_max = w if self.weight_max is None else max(self.weight_max, w)


def _agent_list(adp_root: Path, agents: list[str] | None) -> list[str]:
    if agents is None:
        agents = [p.stem for p in data_files(adp_root)]
        if not agents:
            raise InputError("no ADP files (*.jsonl) found", path=adp_root)
    bad = [a for a in agents if not isinstance(a, str) or not AGENT_NAME.match(a)]
    if bad or len(set(agents)) != len(agents):
        raise ParameterError(f"agents must be unique names of letters, digits, _ . - (got {agents!r})")
    return list(agents)


@step("build_sft", limits={"agents": {"unique": True, "pattern": AGENT_NAME.pattern},
                           "variants": (1, MAX_VARIANTS), "holdout_fraction": {"ge": 0, "lt": 1}})
def build_sft(ctx: StepContext, *, adp_dir: WsPath = DEFAULT_ADP_DIR,
              out_dir: WsPath = DEFAULT_OUT_DIR, heldout_dir: WsPath = DEFAULT_HELDOUT_DIR,
              agents: list[str] | None = None, compatibility: WsPath | None = None,
              variants: int = 3, holdout_fraction: float = 0.1, seed: int = 42) -> StepResult:
    """Build per-agent Unsloth and OpenAI training files and held-out sets from ADP trajectories."""
    if not 1 <= variants <= MAX_VARIANTS:
        raise ParameterError(f"variants must be in 1..{MAX_VARIANTS}, got {variants!r}")
    if not 0.0 <= holdout_fraction < 1.0:
        raise ParameterError(f"holdout_fraction must be in [0, 1), got {holdout_fraction!r}")
    adp_root, out_root, held_root = ctx.path(adp_dir), ctx.path(out_dir), ctx.path(heldout_dir)
    names = _agent_list(adp_root, agents)
    compat_path = ctx.path(compatibility) if compatibility is not None else None
    matrix = resolve_matrix(names, compat_path)
    sources = {a: adp_root / f"{a}.jsonl" for a in names}
    for agent, path in sources.items():
        if not path.exists():
            raise InputError(f"no ADP file for agent {agent!r}", path=path)
    unsloth_paths = {t: out_root / "unsloth" / f"{t}.jsonl" for t in names}
    openai_paths = {t: out_root / "openai" / f"{t}.jsonl" for t in names}
    held_paths = {t: held_root / f"{t}.jsonl" for t in names}
    params = {"adp_dir": adp_dir, "out_dir": out_dir, "heldout_dir": heldout_dir, "agents": agents,
              "compatibility": compatibility, "variants": variants,
              "holdout_fraction": holdout_fraction, "seed": seed,
              # the effective matrix (built-in default included) decides the outputs too
              "matrix_sha256": hashlib.sha256(canonical_json(matrix.to_dict())).hexdigest()}
    run = StepRun(ctx, "build_sft", params, seed=seed,
                  inputs=[*sources.values(), *([compat_path] if compat_path else [])],
                  outputs=[*unsloth_paths.values(), *openai_paths.values(), *held_paths.values()])
    if (cached := run.cached()) is not None:
        return cached

    tally = _Tally(rows=dict.fromkeys(names, 0))
    with ExitStack() as stack:
        unsloth = {t: stack.enter_context(JsonlWriter(p)) for t, p in unsloth_paths.items()}
        openai = {t: stack.enter_context(OpenAIWriter(p, seed=seed)) for t, p in openai_paths.items()}
        held = {t: stack.enter_context(JsonlWriter(p)) for t, p in held_paths.items()}
        for i, source in enumerate(names):
            ctx.report(f"build_sft: rendering {source}", i / len(names))
            # one pass over each source file fans out to every target that uses it
            _render_source(sources[source], source, matrix, variants, holdout_fraction, seed,
                           unsloth, openai, held[source], tally, rejects_beside=unsloth_paths[source])
    ctx.report("build_sft: done", 1.0)

    for t in names:
        run.record(unsloth_paths[t], rows=unsloth[t].count, sha256=unsloth[t].sha256)
        run.record(openai_paths[t], rows=openai[t].rows, sha256=openai[t].summary()["sha256"],
                   extra={"input_rows": openai[t].input_rows, "seed": seed})
        run.record(held_paths[t], rows=held[t].count, sha256=held[t].sha256)
    metrics: dict[str, MetricValue] = {
        "rows": sum(tally.rows.values()), "openai_rows": sum(w.rows for w in openai.values()),
        "heldout_rows": tally.heldout, "examples": tally.examples, "targets": len(names),
        "pairs_used": matrix.pairs_used(), "weight_min": tally.weight_min,
        "weight_max": tally.weight_max, "rejects": tally.rejects, "tool_rows": tally.tool_rows}
    for t in names:
        metrics[f"rows_{t}"] = tally.rows[t]
        metrics[f"openai_rows_{t}"] = openai[t].rows
    log.info("build_sft: %d rows, %d OpenAI rows, %d held out, %d rejects", metrics["rows"],
             metrics["openai_rows"], tally.heldout, tally.rejects)
    notes = [f"{tally.rejects} bad ADP lines rejected"] if tally.rejects else []
    return run.finish(metrics, notes)


def _render_source(path: Path, source: str, matrix: CompatibilityMatrix, variants: int,
                   holdout_fraction: float, seed: int, unsloth: Mapping[str, JsonlWriter],
                   openai: Mapping[str, OpenAIWriter], held: JsonlWriter, tally: _Tally, *,
                   rejects_beside: Path) -> None:
    """Stream one source file into the held-out file or every target's training files."""
    targets = [(t, w) for t in matrix.agents if (w := matrix.weight(t, source)) > 0]
    prompts = {t: [system_prompt(t, matrix.role(t), v) for v in range(variants)] for t, _ in targets}
    own_prompt0 = system_prompt(source, matrix.role(source), 0)
    with Rejects(rejects_beside) as rejects:
        for ex in read_examples(path, source, rejects):
            tally.examples += 1
            if in_holdout(ex.base_id, holdout_fraction, seed):
                held.write_obj(ex.render(source, 0, 1.0, ex.original_system or own_prompt0))
                tally.heldout += 1
                continue
            for target, weight in targets:
                for v in range(variants):
                    prompt = prompts[target][v]
                    if v == 0 and target == source and ex.original_system:
                        prompt = ex.original_system
                    row = ex.render(target, v, weight, prompt)
                    unsloth[target].write_obj(row)
                    openai[target].add(row)
                tally.rows[target] += variants
                tally.saw_weight(weight)
                if ex.has_tool:
                    tally.tool_rows += variants
        tally.rejects += rejects.count
