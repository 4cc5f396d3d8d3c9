"""Pydantic models of the Agent Data Protocol (ADP) standardized trajectory format.

A trajectory is ``schema_version``, ``id``, ``content`` (actions and observations
tagged by ``class_``) and ``details``. Extra keys are rejected everywhere.

Versions. Real ADP data carries 1.0.0, 1.1.0, 1.2.0, 1.3.0, 1.3.1, 1.4.0 and
1.5.0; anything else is rejected by name. A missing ``schema_version`` means the
current one (1.5.0), as upstream does. Fields that only exist in some versions
are accepted only there:

- ``available_apis``: before 1.5.0 (1.5.0 replaced it).
- ``available_custom_tools`` / ``available_code_languages``: 1.5.0 only.
- ``tool_call_id`` on actions and observations: from 1.3.0; the pairing rules
  (an api/code action directly followed by an observation needs an id; never on
  a message_action; unique among actions; an observation's id names an earlier,
  not yet answered action; every action id is answered) apply from 1.3.0 too.
- ``function_call`` on api_action: 1.0.0 and 1.1.0 only.

1.3.1 is **accepted with a warning**. Upstream 1.5.0 does not list it, but the
real agenttuning_os, eto, orca and mind2web data carry it, and a patch release
changes no fields under semantic versioning. It is therefore validated with the
1.3.0 rules, and :func:`version_warning` says so; the current-loader warning (below)
says upstream's loader would refuse it. Coord writes :data:`WRITE_VERSION` ("1.5.0").

Code languages. ``code_action.language`` must be one of the names upstream's
schema accepts (:data:`CODE_LANGUAGES`, 304 of them at 1.5.0), read from
``pipeline/data/adp_code_languages.json``, which records the upstream file and
commit it was taken from. The list is upstream's own, typos and non-language tags
("javasript", "code", "output") included: coord accepts exactly what upstream
accepts. A name outside it is rejected, with a suggestion when a close match exists
("Python" → 'python').

The current loader. Each trajectory is validated by its own version's rules.
Upstream's current loader (1.5.0) applies its rules to every version, so it rejects
some data that its own version allows: 1.3.1, ``available_apis`` and
``function_call`` (not 1.5.0 fields), and the tool_call_id link rules on data older
than 1.3.0. :func:`current_loader_objections` names those, and the file validator
reports them in one warning line per file.

``available_custom_tools`` can only be checked against the functions the
trajectory uses. Upstream also compares it with a per-dataset tool list, which
we do not have, so every api_action function counts as a custom tool here.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

SUPPORTED_VERSIONS: tuple[str, ...] = ("1.0.0", "1.1.0", "1.2.0", "1.3.0", "1.3.1", "1.4.0", "1.5.0")
"""Every schema_version this module validates."""
UPSTREAM_VERSIONS: frozenset[str] = frozenset({"1.0.0", "1.1.0", "1.2.0", "1.3.0", "1.4.0", "1.5.0"})
"""The versions upstream ADP 1.5.0 itself accepts (no 1.3.1)."""
CURRENT_VERSION = "1.5.0"
"""Assumed when a trajectory has no schema_version."""
WRITE_VERSION = "1.5.0"
"""The version coord writes."""

_LANGUAGES_FILE = "data/adp_code_languages.json"


def _load_languages() -> tuple[dict[str, Any], tuple[str, ...]]:
    """``(source record, names)`` of the upstream language list shipped with coord."""
    raw = json.loads((resources.files("pipeline") / _LANGUAGES_FILE).read_text(encoding="utf-8"))
    names, source = raw.get("languages"), raw.get("source")
    if (not isinstance(names, list) or not all(isinstance(n, str) and n for n in names)
            or len(set(names)) != len(names) or raw.get("count") != len(names) or not isinstance(source, dict)):
        raise ValueError(f"pipeline/{_LANGUAGES_FILE}: needs 'source' and 'languages' "
                         "(unique non-empty strings, as many as 'count')")
    return source, tuple(names)


CODE_LANGUAGES_SOURCE, CODE_LANGUAGE_LIST = _load_languages()
"""Where the language list comes from (repository, path, commit, schema_version), and the list in upstream order."""
CODE_LANGUAGES: frozenset[str] = frozenset(CODE_LANGUAGE_LIST)
"""Accepted ``code_action.language`` values: exactly upstream's (case-sensitive)."""

TextSource = Literal["user", "agent", "environment"]
ItemClass = Literal["api_action", "code_action", "message_action",
                    "text_observation", "image_observation", "web_observation"]
ITEM_CLASSES: tuple[str, ...] = ("api_action", "code_action", "message_action",
                                 "text_observation", "image_observation", "web_observation")
ACTION_CLASSES = frozenset({"api_action", "code_action", "message_action"})
TOOL_ACTION_CLASSES = frozenset({"api_action", "code_action"})
OBSERVATION_CLASSES = frozenset({"text_observation", "image_observation", "web_observation"})


def version_tuple(version: str) -> tuple[int, ...]:
    """``"1.3.1"`` → ``(1, 3, 1)``; only meaningful for supported versions."""
    known = _VERSION_TUPLES.get(version)
    return known if known is not None else tuple(int(part) for part in version.split("."))


_VERSION_TUPLES: dict[str, tuple[int, ...]] = {}
_VERSION_TUPLES.update((v, version_tuple(v)) for v in SUPPORTED_VERSIONS)


def version_warning(version: str | None) -> str | None:
    """Why a supported version deserves a warning, or None when it is fine."""
    if version is None:
        return f"no schema_version; validated as {CURRENT_VERSION}"
    if version in SUPPORTED_VERSIONS and version not in UPSTREAM_VERSIONS:
        return f"schema_version {version!r} validated with the 1.3.0 rules (a patch release of 1.3)"
    return None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Action(_Strict):
    tool_call_id: str | None = None
    """Links a tool action to its observation (1.3.0+)."""
    reasoning_content: str | None = None
    """Long chain-of-thought text, kept apart from ``description``."""
    reward: float | None = None
    """Optional per-step reward."""


class ApiAction(_Action):
    """A call of a named tool with keyword arguments."""

    class_: Literal["api_action"] = "api_action"
    function: str
    kwargs: dict[str, Any]
    description: str | None = None
    """The agent's thought for this step."""
    function_call: str | None = None
    """Full call text; only in 1.0.0/1.1.0 data."""


class CodeAction(_Action):
    """Code the agent runs."""

    class_: Literal["code_action"] = "code_action"
    language: str
    content: str
    description: str | None
    """Required to be present (may be null), as upstream declares it."""

    @field_validator("language")
    @classmethod
    def _known_language(cls, value: str) -> str:
        if value not in CODE_LANGUAGES:
            raise PydanticCustomError("code_language", _language_message(value))
        return value


class MessageAction(_Action):
    """Text the agent sends to the user."""

    class_: Literal["message_action"] = "message_action"
    content: str
    description: str | None = None


class _Observation(_Strict):
    tool_call_id: str | None = None
    """The id of the action whose result this is (1.3.0+)."""
    reward: float | None = None


class TextObservation(_Observation):
    """Text from the user, the environment or the agent itself."""

    class_: Literal["text_observation"] = "text_observation"
    content: str
    source: TextSource
    name: str | None = None
    """Participant name."""


class BoundingBox(_Strict):
    """Where an annotated element sits in an image."""

    x: float
    y: float
    width: float
    height: float


class ImageAnnotation(_Strict):
    """One annotated element of an image."""

    element_type: str
    bounding_box: BoundingBox
    text: str | None
    content_description: str | None = None
    clickable: bool | None = None
    editable: bool | None = None


class ImageObservation(_Observation):
    """An image (by path) the agent sees."""

    class_: Literal["image_observation"] = "image_observation"
    content: str
    """Path to the image."""
    annotations: list[ImageAnnotation] | None = None
    source: TextSource


class WebObservation(_Observation):
    """A web page state; every field must be present but may be null."""

    class_: Literal["web_observation"] = "web_observation"
    html: str | None
    axtree: str | None
    url: str | None
    image_observation: ImageObservation | None
    viewport_size: tuple[int, int] | None


ContentItem = Annotated[
    ApiAction | CodeAction | MessageAction | TextObservation | ImageObservation | WebObservation,
    Field(discriminator="class_"),
]


@dataclass(frozen=True)
class Issue:
    """A rule broken by a trajectory that types alone cannot express."""

    path: str
    """Field path such as ``content[3].tool_call_id``."""
    message: str


class TrajectoryIssues(ValueError):
    """Raised by :class:`Trajectory` with every broken cross-field rule."""

    def __init__(self, issues: list[Issue]) -> None:
        self.issues = issues
        super().__init__("; ".join(f"{i.path}: {i.message}" for i in issues))


class Trajectory(_Strict):
    """One ADP trajectory."""

    schema_version: str = CURRENT_VERSION
    id: str
    content: list[ContentItem]
    available_apis: list[str] | None = None
    """Tools available to this trajectory (before 1.5.0)."""
    available_custom_tools: list[str] | None = None
    """Custom tools available to this trajectory (1.5.0)."""
    available_code_languages: list[str] | None = None
    """Exactly the code_action languages used (1.5.0)."""
    details: dict[str, Any] = Field(default_factory=dict)

    @field_validator("schema_version")
    @classmethod
    def _supported(cls, value: str) -> str:
        if value not in SUPPORTED_VERSIONS:
            raise PydanticCustomError(
                "schema_version",
                f"unsupported schema_version {value!r} (supported: {', '.join(SUPPORTED_VERSIONS)})")
        return value

    @field_validator("available_code_languages")
    @classmethod
    def _languages_known(cls, value: list[str] | None) -> list[str] | None:
        for lang in value or ():
            if lang not in CODE_LANGUAGES:
                raise PydanticCustomError("code_language", _language_message(lang))
        return value

    @model_validator(mode="after")
    def _cross_field_rules(self) -> Trajectory:
        top = self.model_fields_set | {"schema_version"}
        items = [_model_view(item) for item in self.content]
        issues = cross_field_issues(self.schema_version, top, items) + availability_issues(self)
        if issues:
            raise TrajectoryIssues(issues)
        return self


@dataclass(frozen=True, slots=True)
class ItemView:
    """What the cross-field rules need to know about one content item."""

    kind: str | None
    fields: frozenset[str]
    tool_call_id: str | None = None


def _model_view(item: BaseModel) -> ItemView:
    return ItemView(getattr(item, "class_", None), frozenset(item.model_fields_set),
                    getattr(item, "tool_call_id", None))


def raw_item_view(item: Any) -> ItemView:
    """View of an unvalidated content item (any JSON value; wrong types count as absent)."""
    if not isinstance(item, Mapping):
        return ItemView(None, frozenset())
    kind, call_id = item.get("class_"), item.get("tool_call_id")
    return ItemView(kind if isinstance(kind, str) else None, frozenset(map(str, item)),
                    call_id if isinstance(call_id, str) else None)


def cross_field_issues(version: str, top_fields: Iterable[str], items: list[ItemView]) -> list[Issue]:
    """Every version-gated field and tool_call_id rule the trajectory breaks."""
    if version not in SUPPORTED_VERSIONS:
        return []
    v = version_tuple(version)
    top = set(top_fields)
    issues = _top_level_version_issues(version, v, top)
    for index, item in enumerate(items):
        if "tool_call_id" in item.fields and v < (1, 3):
            issues.append(Issue(f"content[{index}].tool_call_id",
                                f"not part of schema_version {version!r} (added in 1.3.0)"))
        if item.kind == "api_action" and "function_call" in item.fields and v >= (1, 2):
            issues.append(Issue(f"content[{index}].function_call",
                                f"not part of schema_version {version!r} (only 1.0.0 and 1.1.0)"))
    if v >= (1, 3):
        issues.extend(_link_issues(items))
    return issues


def current_loader_objections(version: str, top_fields: Iterable[str], items: list[ItemView]) -> list[str]:
    """Why upstream's current loader would reject a trajectory that its own version allows.

    Call it for trajectories valid under their own version; the answer is a list of
    short, stable reasons (empty when the current loader would load it too).
    """
    reasons: list[str] = []
    if version not in UPSTREAM_VERSIONS:
        reasons.append(f"schema_version {version!r} is not in its supported list")
    if "available_apis" in set(top_fields):
        reasons.append(f"available_apis is not a {CURRENT_VERSION} field")
    if any(i.kind == "api_action" and "function_call" in i.fields for i in items):
        reasons.append(f"api_action.function_call is not a {CURRENT_VERSION} field")
    if version in SUPPORTED_VERSIONS and version_tuple(version) < (1, 3) and _link_issues(items):
        reasons.append("a tool action followed by an observation has no tool_call_id (link rules of 1.3.0+)")
    return reasons


def objections_line(per_reason: Mapping[str, int]) -> str:
    """The one warning line of a file (its count, appended by the caller, is how many trajectories)."""
    reasons = "; ".join(f"{reason} ×{n}" for reason, n in sorted(per_reason.items()))
    return f"trajectories upstream's current ADP loader ({CURRENT_VERSION}) would reject: {reasons}"


def _top_level_version_issues(version: str, v: tuple[int, ...], top: set[str]) -> list[Issue]:
    issues = []
    if "available_apis" in top and v >= (1, 5):
        issues.append(Issue("available_apis", f"not part of schema_version {version!r} "
                                              "(replaced by available_custom_tools in 1.5.0)"))
    for name in ("available_custom_tools", "available_code_languages"):
        if name in top and v < (1, 5):
            issues.append(Issue(name, f"not part of schema_version {version!r} (added in 1.5.0)"))
    return issues


def _link_issues(items: list[ItemView]) -> list[Issue]:
    issues: list[Issue] = []
    action_at: dict[str, int] = {}
    answered: dict[str, int] = {}
    for index, item in enumerate(items):
        call_id = item.tool_call_id
        if call_id is None:
            if (item.kind in TOOL_ACTION_CLASSES and index + 1 < len(items)
                    and items[index + 1].kind in OBSERVATION_CLASSES):
                issues.append(Issue(f"content[{index}].tool_call_id", f"{item.kind} at content[{index}] "
                                    "is followed by an observation but has no tool_call_id"))
            continue
        path = f"content[{index}].tool_call_id"
        if item.kind == "message_action":
            issues.append(Issue(path, f"message_action must not have a tool_call_id (got {call_id!r})"))
        elif item.kind in TOOL_ACTION_CLASSES:
            if call_id in action_at:
                issues.append(Issue(path, f"duplicate tool_call_id {call_id!r} "
                                          f"(already used at content[{action_at[call_id]}])"))
            else:
                action_at[call_id] = index
        elif item.kind in OBSERVATION_CLASSES:
            if call_id not in action_at:
                issues.append(Issue(path, f"tool_call_id {call_id!r} does not match any earlier "
                                          "api_action or code_action"))
            elif call_id in answered:
                issues.append(Issue(path, f"tool_call_id {call_id!r} already answered at "
                                          f"content[{answered[call_id]}]"))
            else:
                answered[call_id] = index
    for call_id, index in action_at.items():
        if call_id not in answered:
            issues.append(Issue(f"content[{index}].tool_call_id",
                                f"tool_call_id {call_id!r} has no matching observation"))
    return issues


def availability_issues(traj: Trajectory) -> list[Issue]:
    """Rules tying ``available_*`` lists to the actions actually used."""
    issues: list[Issue] = []
    if traj.available_apis is None and traj.available_custom_tools is None \
            and traj.available_code_languages is None:
        return issues  # no list to check the actions against
    functions = {i.function for i in traj.content if isinstance(i, ApiAction)}
    languages = {i.language for i in traj.content if isinstance(i, CodeAction)}
    for name, listed in (("available_apis", traj.available_apis),
                         ("available_custom_tools", traj.available_custom_tools)):
        if listed is not None and (missing := sorted(functions - set(listed))):
            issues.append(Issue(name, f"does not list api_action functions {missing}"))
    if traj.available_code_languages is not None:
        listed_langs = set(traj.available_code_languages)
        if missing := sorted(languages - listed_langs):
            issues.append(Issue("available_code_languages", f"does not list used languages {missing}"))
        if unused := sorted(listed_langs - languages):
            issues.append(Issue("available_code_languages", f"lists languages no code_action uses {unused}"))
    return issues


def _language_message(value: str) -> str:
    close = difflib.get_close_matches(value.lower(), sorted(CODE_LANGUAGES), n=1, cutoff=0.75)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown code language {value!r}{hint}"
