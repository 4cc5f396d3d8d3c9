"""OpenAI chat fine-tuning files: a per-line validator, a token estimator and step ``validate_openai``.

Modules: :mod:`~pipeline.openai_format.tokens` (model limits, token estimate),
:mod:`~pipeline.openai_format._rules` (the per-example checks),
:mod:`~pipeline.openai_format.validate` (one file, streamed) and
:mod:`~pipeline.openai_format.step` (the pipeline step); this package re-exports their public names.

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

from pipeline.openai_format._rules import (
    MAX_IMAGES_PER_EXAMPLE,
    PART_TYPES,
    ROLE_KEYS,
    TOP_LEVEL_KEYS,
)
from pipeline.openai_format.step import DEFAULT_IN_DIR, DEFAULT_REPORT, validate_openai
from pipeline.openai_format.tokens import (
    CHARS_PER_TOKEN,
    CONTEXT_LIMITS,
    DEFAULT_MODEL,
    IMAGE_TOKENS,
    REPLY_PRIMER,
    TOKENS_PER_MESSAGE,
    TOKENS_PER_NAME,
    base_model,
    context_limit,
    estimate_tokens,
)
from pipeline.openai_format.validate import FileReport, LineError, validate_openai_file

__all__ = [
    "CHARS_PER_TOKEN",
    "CONTEXT_LIMITS",
    "DEFAULT_IN_DIR",
    "DEFAULT_MODEL",
    "DEFAULT_REPORT",
    "IMAGE_TOKENS",
    "MAX_IMAGES_PER_EXAMPLE",
    "PART_TYPES",
    "REPLY_PRIMER",
    "ROLE_KEYS",
    "TOKENS_PER_MESSAGE",
    "TOKENS_PER_NAME",
    "TOP_LEVEL_KEYS",
    "FileReport",
    "LineError",
    "base_model",
    "context_limit",
    "estimate_tokens",
    "validate_openai",
    "validate_openai_file",
]
