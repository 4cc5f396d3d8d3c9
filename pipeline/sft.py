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
JSON text ``{"name": …, "arguments": {…}}`` (the ADP kwargs exactly as stored), preceded by a ``gpt``
message when the call carries a non-empty thought; a code call → ``function_call`` to the tool
``run_code`` with arguments ``{"language", "code"}``; a tool result → ``observation``. Blank user and
assistant messages are left out (an empty ``<finish> </finish>`` trains nothing, and OpenAI's format
needs content). ShareGPT pairs results with calls by position (each observation answers the oldest
call not yet answered); when position alone would pair some result with the wrong call (a call with
no result before answered ones, results in another order than their calls), every function_call and
observation of that row carries ``tool_call_id`` instead. No valid trajectory is refused for its
shape; only one with nothing an assistant said or did ("no assistant turn") is. Row ids are
``T<-<base id>#<variant>``. Bad ADP lines of agent S (invalid JSON, schema errors, duplicate ids,
a foreign ``details.agent_name``) go to ``<out_dir>/unsloth/S.jsonl.rejects.jsonl`` with line and
reason.

Tool definitions: a row whose conversation calls tools carries ``tools`` (OpenAI tool definitions)
when the source has them: the ``custom_tools`` of upstream's dataset metadata, read from
``<adp_dir>/S.metadata.json`` or else ``<adp_dir>/metadata.json`` (see :mod:`pipeline.adp.tools`),
narrowed by the trajectory's ``available_custom_tools`` / ``available_apis``; and, for code calls,
the definition of ``run_code``, which coord itself defines.

Streaming: each source file is read once, line by line, and every row is written at once to the
files of all targets that use that source (2 open writers per target), so memory does not grow
with the data; only 16-byte digests (xxh3-128) of the source's ids are kept to catch duplicates.
What the rows of one example share (its conversation in both forms, its tools) is serialized once,
and each row's line is spliced from those bytes and its own few fields: the same bytes as
serializing the row (``tests/pipeline/test_sft.py`` checks it).

OpenAI file (``<out_dir>/openai/T.jsonl``): ``{"messages": [...]}`` (plus ``tools`` when the row
has them), converted by :func:`pipeline.openai_format.convert.unsloth_to_openai`. OpenAI only
honours per-message weights of 0 or 1, so a fractional row weight w is applied by deterministic
sampling: the row is written iff ``u(seed, row id) < w`` (weight ≥ 1 always, 0 never). Expected
kept share is w; the same seed keeps the same rows. A row whose estimated tokens exceed the training
context of ``openai_model`` is left out of the OpenAI file (OpenAI would cut its end, where the
answer is) and counted.

Metrics: ``rows`` (Unsloth rows), ``openai_rows``, ``heldout_rows``, ``examples`` (valid source
trajectories, held-out ones included), ``targets``, ``pairs_used`` (target/source pairs with
weight > 0, diagonal included), ``weight_min`` / ``weight_max`` (over written rows; None when there
are none), ``rejects`` (bad ADP lines), ``tool_rows`` (Unsloth rows with a function call),
``linked_rows`` (Unsloth rows whose calls and results carry ids), ``openai_too_long`` (sampled rows
left out of the OpenAI files for their length), ``rows_<agent>`` and ``openai_rows_<agent>`` per
target.
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
from typing import Any, Literal, NotRequired, TypedDict

import orjson
import xxhash

from coordinator import MetricValue, StepContext, StepResult, StepRun, WsPath, step
from coordinator.core.errors import InputError, ParameterError, TaskError
from coordinator.core.io import JsonlWriter, Rejects, data_files, iter_jsonl
from coordinator.core.step_run import canonical_json
from pipeline._rowindex import RowIndexWriter, content_key, content_text
from pipeline._spill import SpillMap
from pipeline.adp.tools import ToolCatalog
from pipeline.adp.turns import trajectory_to_turns
from pipeline.compat import AGENT_NAME, CompatibilityMatrix, resolve_matrix
from pipeline.openai_format.convert import ConvertedBody, SystemHead, system_head, unsloth_to_openai
from pipeline.openai_format.tokens import DEFAULT_MODEL, context_limit, estimate_tokens

log = logging.getLogger(__name__)

From = Literal["system", "human", "gpt", "function_call", "observation"]
ShareGPTMessage = TypedDict("ShareGPTMessage", {"from": From, "value": str, "tool_call_id": NotRequired[str]})


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
    tools: NotRequired[list[dict[str, Any]]]


CODE_TOOL = "run_code"
"""Tool name code calls are rendered as (arguments: language, code)."""
CODE_TOOL_SPEC: dict[str, Any] = {"type": "function", "function": {
    "name": CODE_TOOL, "description": "Run a piece of code and return what it prints.",
    "parameters": {"type": "object", "properties": {
        "language": {"type": "string", "description": "Language tag of the code (ADP's names: python, bash, sql, …)."},
        "code": {"type": "string", "description": "The code to run."}},
        "required": ["language", "code"], "additionalProperties": False}}}
"""The definition of :data:`CODE_TOOL`, carried by rows that run code."""
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
    if weight <= 0:
        return False
    # _unit(seed, row_id), spelled out: it runs for most rows of a build
    digest = hashlib.blake2b(f"{seed}|{row_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 < weight


class _Sampler:
    """:func:`keep_for_openai` for one seed, with the hash of ``"<seed>|"`` computed once."""

    def __init__(self, seed: int) -> None:
        self._copy = hashlib.blake2b(f"{seed}|".encode(), digest_size=8).copy

    def keep(self, row_id: str, weight: float) -> bool:
        """Whether the row is kept (the same answer as ``keep_for_openai(row_id, weight, seed)``)."""
        if weight >= 1.0:
            return True
        if weight <= 0:
            return False
        h = self._copy()
        h.update(row_id.encode())
        return int.from_bytes(h.digest(), "big") / 2**64 < weight


def turns_to_conversation(turns: Sequence[Mapping[str, Any]]) -> tuple[str | None, list[ShareGPTMessage]]:
    """Split turns into the original system prompt and the ShareGPT conversation after it."""
    system: str | None = None
    conv: list[ShareGPTMessage] = []
    links: list[tuple[ShareGPTMessage, str]] = []  # call or result message → the call's id
    for i, turn in enumerate(turns):
        role, content = turn.get("role"), turn.get("content") or ""
        if role == "system":
            if conv:
                raise ValueError(f"turn {i}: system turn after the conversation started")
            system = content if system is None else f"{system}\n\n{content}"
        elif role == "user":
            if content.strip():
                conv.append({"from": "human", "value": content})
        elif role == "tool":
            conv.append({"from": "observation", "value": content})
            links.append((conv[-1], str(turn.get("tool_call_id"))))
        elif role == "assistant":
            call = _call_value(turn)
            if content.strip():
                conv.append({"from": "gpt", "value": content})
            if call is not None:
                conv.append({"from": "function_call", "value": call[1]})
                links.append((conv[-1], call[0]))
        else:
            raise ValueError(f"turn {i}: unknown role {role!r}")
    if not any(m["from"] in ("gpt", "function_call") for m in conv):
        raise ValueError("no assistant turn")
    if not _position_pairs_right(links):
        for message, call_id in links:
            message["tool_call_id"] = call_id
    return system, conv


def _position_pairs_right(links: Sequence[tuple[ShareGPTMessage, str]]) -> bool:
    """Whether "each result answers the oldest unanswered call" pairs every result with its own call."""
    waiting: deque[str] = deque()
    for message, call_id in links:
        if message["from"] == "function_call":
            waiting.append(call_id)
        elif not waiting or waiting.popleft() != call_id:
            return False
    return True


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


_NO_HEAD: Any = object()
MAX_HEADS, MAX_HEAD_CHARS = 256, 2048
"""System prompts whose serialized OpenAI message an :class:`OpenAIWriter` keeps, and the longest
it keeps (memory stays flat: ~1.5 MB at most)."""


class OpenAIWriter:
    """Atomic OpenAI JSONL writer that samples Unsloth rows by weight and converts them.

    A kept row whose estimated tokens exceed ``max_tokens`` (the training context of
    ``model``; None: no limit) is not written but counted as ``too_long``.
    """

    def __init__(self, path: Path, *, seed: int, model: str = DEFAULT_MODEL) -> None:
        self.seed = seed
        self._sampler = _Sampler(seed)
        self._heads: dict[str, SystemHead | None] = {}
        self.max_tokens = context_limit(model)
        self.input_rows = 0
        self.too_long = 0
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
        example = unsloth_to_openai(row)
        if self.max_tokens is not None and estimate_tokens(example) > self.max_tokens:
            self.too_long += 1
            return False
        self._writer.write_obj(example)
        return True

    def add_rendered(self, row_id: str, weight: float, system: str, body: ConvertedBody) -> bool:
        """:meth:`add` for a row ``[system, *conversation]`` whose conversation is already converted."""
        self.input_rows += 1
        if not self._sampler.keep(row_id, weight):
            return False
        head = self._heads.get(system, _NO_HEAD)
        if head is _NO_HEAD:  # a build has a few prompts per target, and one more per example at most
            head = system_head(system)
            if len(system) <= MAX_HEAD_CHARS:
                if len(self._heads) >= MAX_HEADS:
                    self._heads.clear()
                self._heads[system] = head
        line, tokens = body.line_under(head)
        if self.max_tokens is not None and tokens > self.max_tokens:
            self.too_long += 1
            return False
        self._writer.write_line(line)
        return True

    @property
    def rows(self) -> int:
        """Rows written so far."""
        return self._writer.count

    def summary(self) -> dict[str, Any]:
        """Counts and digest of the file (call after the block closed)."""
        return {"path": str(self._writer.path), "input_rows": self.input_rows, "rows": self.rows,
                "sampled_out": self.input_rows - self.rows - self.too_long, "too_long": self.too_long,
                "sha256": self._writer.sha256, "bytes": self._writer.bytes}


def write_openai_rows(rows: Iterable[Mapping[str, Any]], out_path: Path, *, seed: int,
                      model: str = DEFAULT_MODEL) -> dict[str, Any]:
    """Sample and convert Unsloth rows into an OpenAI file, atomically; return counts and sha256."""
    with OpenAIWriter(Path(out_path), seed=seed, model=model) as writer:
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
    tools: list[dict[str, Any]]
    """Definitions of the tools the conversation may call (empty when the source has none)."""

    @property
    def linked(self) -> bool:
        """Whether calls and results carry ids (position alone would pair them wrongly)."""
        return any("tool_call_id" in m for m in self.conversation)

    def render(self, target: str, variant: int, weight: float, prompt: str) -> UnslothRow:
        """The Unsloth row of this example for ``target`` under ``prompt``."""
        row: UnslothRow = {
            "id": f"{target}<-{self.base_id}#{variant}",
            "conversations": [{"from": "system", "value": prompt}, *self.conversation],
            "weight": weight, "target_agent": target, "source_agent": self.source_agent,
            "base_id": self.base_id, "category": self.category, "difficulty": self.difficulty,
            "variant": variant}
        if self.tools:
            row["tools"] = self.tools
        return row


_OPT = orjson.OPT_NON_STR_KEYS
"""The options of :func:`coordinator.core.io.dumps_line` but the newline: pieces of its lines."""


def _json(value: Any) -> bytes:
    return orjson.dumps(value, option=_OPT)


def system_message_json(prompt: str) -> bytes:
    """The system message of a row under ``prompt``, serialized (a piece of :meth:`RowBytes.line`)."""
    return _json({"from": "system", "value": prompt})


def target_json(target: str, weight: float) -> bytes:
    """The ``weight`` and ``target_agent`` fields of a row, serialized (a piece of :meth:`RowBytes.line`)."""
    return b',"weight":' + _json(weight) + b',"target_agent":' + _json(target)


@dataclass(frozen=True, slots=True)
class RowBytes:
    """An example's Unsloth rows as bytes: what every row shares is serialized once, per example.

    ``dumps_line(ex.render(target, v, w, prompt))`` is the bytes ``{"id":<id>,"conversations":[``,
    the system message, :attr:`conversation`, the weight and target, :attr:`middle`, the variant and
    :attr:`end` (orjson writes a dict's keys in order and a value the same wherever it stands;
    ``tests/pipeline/test_sft.py`` checks the two agree).
    """

    conversation: bytes
    """``,<message>,…]`` after the system message (``]`` alone for an empty conversation)."""
    middle: bytes
    """``,"source_agent":…,"variant":``."""
    end: bytes
    """``,"tools":[…]}`` (or ``}``) and the newline."""

    @classmethod
    def of(cls, ex: Example) -> RowBytes:
        """Serialize what the rows of ``ex`` share."""
        conversation = b"," + _json(ex.conversation)[1:] if ex.conversation else b"]"
        middle = b"".join((b',"source_agent":', _json(ex.source_agent), b',"base_id":', _json(ex.base_id),
                           b',"category":', _json(ex.category), b',"difficulty":', _json(ex.difficulty),
                           b',"variant":'))
        end = b',"tools":' + _json(ex.tools) + b"}\n" if ex.tools else b"}\n"
        return cls(conversation, middle, end)

    def line(self, row_id: str, system_message: bytes, target: bytes, variant: int) -> bytes:
        """The line of one row: pieces from :func:`system_message_json` and :func:`target_json`."""
        return b"".join((b'{"id":', _json(row_id), b',"conversations":[', system_message, self.conversation,
                         target, self.middle, str(variant).encode(), self.end))


def example_from_trajectory(traj: Any, agent: str, catalog: ToolCatalog | None = None) -> Example:
    """Validate one ADP trajectory of ``agent`` and convert it; raises ValueError when unusable.

    ``catalog`` holds the tool definitions of the trajectory's dataset, if it has any.
    """
    if not isinstance(traj, dict):
        raise ValueError("trajectory is not a JSON object")
    base_id = traj.get("id")
    if not isinstance(base_id, str) or not base_id:
        raise ValueError("missing or empty 'id'")
    details = traj.get("details") or {}
    named = details.get("agent_name")
    if named is not None and named != agent:
        raise ValueError(f"details.agent_name is {named!r} in the file of agent {agent!r}")
    turns = trajectory_to_turns(traj)
    system, conv = turns_to_conversation(turns)
    has_tool = any(m["from"] == "function_call" for m in conv)
    tools = catalog.for_trajectory(traj) if catalog is not None and has_tool else []
    if any("code_call" in t for t in turns) and all(t["function"]["name"] != CODE_TOOL for t in tools):
        tools.append(CODE_TOOL_SPEC)
    return Example(base_id, agent, details.get("task_category"), details.get("difficulty"),
                   system or None, conv, has_tool, tools)


def read_examples(path: Path, agent: str, rejects: Rejects,
                  catalog: ToolCatalog | None = None) -> Iterator[Example]:
    """Stream the valid examples of one ADP file; bad or duplicate lines go to ``rejects``."""
    with SpillMap[bytes, int]() as seen:  # bounded: spills to disk past a cap
        yield from _unique_examples(path, agent, rejects, seen, catalog)


def _unique_examples(path: Path, agent: str, rejects: Rejects, seen: SpillMap[bytes, int],
                     catalog: ToolCatalog | None) -> Iterator[Example]:
    for lineno, traj in iter_jsonl(path, rejects):
        try:
            ex = example_from_trajectory(traj, agent, catalog)
        except (TaskError, InputError, ParameterError, ValueError, TypeError, KeyError) as e:
            rejects.add(source=path, line=lineno, reason=str(e) or type(e).__name__,
                        raw=orjson.dumps(traj))
            continue
        # 128-bit xxh3: two ids share a key with probability ~n²/2¹²⁹ (~10⁻²⁷ for a million)
        key = xxhash.xxh3_128_digest(ex.base_id.encode("utf-8", "surrogatepass"))
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
    linked_rows: int = 0
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
              variants: int = 3, holdout_fraction: float = 0.1, seed: int = 42,
              openai_model: str = DEFAULT_MODEL) -> StepResult:
    """Build per-agent Unsloth and OpenAI training files and held-out sets from ADP trajectories.

    ``openai_model`` is the model the OpenAI files are meant for: rows longer than its training
    context are left out of them (and counted).
    """
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
    metadata = {a: _metadata_path(adp_root, a) for a in names}
    unsloth_paths = {t: out_root / "unsloth" / f"{t}.jsonl" for t in names}
    openai_paths = {t: out_root / "openai" / f"{t}.jsonl" for t in names}
    held_paths = {t: held_root / f"{t}.jsonl" for t in names}
    params = {"adp_dir": adp_dir, "out_dir": out_dir, "heldout_dir": heldout_dir, "agents": agents,
              "compatibility": compatibility, "variants": variants,
              "holdout_fraction": holdout_fraction, "seed": seed, "openai_model": openai_model,
              # the effective matrix (built-in default included) decides the outputs too
              "matrix_sha256": hashlib.sha256(canonical_json(matrix.to_dict())).hexdigest()}
    run = StepRun(ctx, "build_sft", params, seed=seed,
                  inputs=[*sources.values(), *([compat_path] if compat_path else []),
                          *sorted({m for m in metadata.values() if m is not None})],
                  outputs=[*unsloth_paths.values(), *openai_paths.values(), *held_paths.values()])
    if (cached := run.cached()) is not None:
        return cached

    tally = _Tally(rows=dict.fromkeys(names, 0))
    with ExitStack() as stack:
        indexes = {t: RowIndexWriter(ctx.workspace, ctx.rel(p)) for t, p in unsloth_paths.items()}
        for index in indexes.values():
            stack.callback(index.discard)  # a no-op for the finished ones
        unsloth = {t: stack.enter_context(JsonlWriter(p)) for t, p in unsloth_paths.items()}
        openai = {t: stack.enter_context(OpenAIWriter(p, seed=seed, model=openai_model))
                  for t, p in openai_paths.items()}
        held = {t: stack.enter_context(JsonlWriter(p)) for t, p in held_paths.items()}
        for i, source in enumerate(names):
            ctx.report(f"build_sft: rendering {source}", i / len(names))
            # one pass over each source file fans out to every target that uses it
            meta = metadata[source]
            catalog = ToolCatalog.load(meta) if meta is not None else None
            _render_source(sources[source], source, matrix, variants, holdout_fraction, seed,
                           unsloth, openai, held[source], tally, rejects_beside=unsloth_paths[source],
                           catalog=catalog, indexes=indexes)
        for t, index in indexes.items():  # lets audit skip parsing rows whose conversation it has seen
            index.finish(unsloth[t].sha256)  # every row is written: the digest is the file's
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
        "weight_max": tally.weight_max, "rejects": tally.rejects, "tool_rows": tally.tool_rows,
        "linked_rows": tally.linked_rows, "openai_too_long": sum(w.too_long for w in openai.values())}
    for t in names:
        metrics[f"rows_{t}"] = tally.rows[t]
        metrics[f"openai_rows_{t}"] = openai[t].rows
    log.info("build_sft: %d rows, %d OpenAI rows, %d held out, %d rejects", metrics["rows"],
             metrics["openai_rows"], tally.heldout, tally.rejects)
    notes = [f"{tally.rejects} bad ADP lines rejected"] if tally.rejects else []
    if metrics["openai_too_long"]:
        notes.append(f"{metrics['openai_too_long']} sampled rows left out of the OpenAI files: longer than "
                     f"the training context of {openai_model}")
    return run.finish(metrics, notes)


def _metadata_path(adp_root: Path, agent: str) -> Path | None:
    """The dataset metadata (tool definitions) of an agent's ADP file, if there is one."""
    for candidate in (adp_root / f"{agent}.metadata.json", adp_root / "metadata.json"):
        if candidate.is_file():
            return candidate
    return None


def _render_source(path: Path, source: str, matrix: CompatibilityMatrix, variants: int,
                   holdout_fraction: float, seed: int, unsloth: Mapping[str, JsonlWriter],
                   openai: Mapping[str, OpenAIWriter], held: JsonlWriter, tally: _Tally, *,
                   rejects_beside: Path, catalog: ToolCatalog | None,
                   indexes: Mapping[str, RowIndexWriter]) -> None:
    """Stream one source file into the held-out file or every target's training files."""
    targets = [(t, w) for t in matrix.agents if (w := matrix.weight(t, source)) > 0]
    prompts = {t: [system_prompt(t, matrix.role(t), v) for v in range(variants)] for t, _ in targets}
    prompt_json = {t: [system_message_json(p) for p in ps] for t, ps in prompts.items()}
    target_fields = {t: target_json(t, w) for t, w in targets}
    own_prompt0 = system_prompt(source, matrix.role(source), 0)
    with Rejects(rejects_beside) as rejects:
        for ex in read_examples(path, source, rejects, catalog):
            tally.examples += 1
            if in_holdout(ex.base_id, holdout_fraction, seed):
                held.write_obj(ex.render(source, 0, 1.0, ex.original_system or own_prompt0))
                tally.heldout += 1
                continue
            # the OpenAI form and the content key are the same for every target and variant
            body = ConvertedBody.of(ex.conversation, ex.tools)
            key = content_key(content_text(ex.conversation))
            rows = RowBytes.of(ex)  # the rows' bytes but the parts that differ (ex.render's, spliced)
            linked = ex.linked
            for target, weight in targets:
                out, index, fields = unsloth[target], indexes[target], target_fields[target]
                sampled, target_prompts, messages = openai[target], prompts[target], prompt_json[target]
                for v in range(variants):
                    prompt, message = target_prompts[v], messages[v]
                    if v == 0 and target == source and ex.original_system:
                        prompt = ex.original_system
                        message = system_message_json(prompt)
                    row_id = f"{target}<-{ex.base_id}#{v}"
                    line = rows.line(row_id, message, fields, v)
                    index.add_row(row_id, weight, target, ex.base_id, ex.difficulty, prompt,
                                  key, out.bytes, len(line))
                    out.write_line(line)
                    sampled.add_rendered(row_id, float(weight), prompt, body)
                tally.rows[target] += variants
                tally.saw_weight(weight)
                if ex.has_tool:
                    tally.tool_rows += variants
                if linked:
                    tally.linked_rows += variants
        tally.rejects += rejects.count
