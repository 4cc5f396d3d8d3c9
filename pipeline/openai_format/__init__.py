"""OpenAI chat fine-tuning files: a per-line validator, a token estimator, the conversion of
training rows, and step ``validate_openai``.

Modules: :mod:`~pipeline.openai_format.tokens` (model limits, token estimate),
:mod:`~pipeline.openai_format._rules` (the per-example checks),
:mod:`~pipeline.openai_format.validate` (one file, streamed),
:mod:`~pipeline.openai_format.convert` (Unsloth/ShareGPT row → example) and
:mod:`~pipeline.openai_format.step` (the pipeline step); this package re-exports their public names.

Rules checked (OpenAI supervised chat fine-tuning format and the chat message schema). Errors
are OpenAI's documented rules; where coord is stricter, a warning says so:

- each line is a JSON object whose keys are among ``messages``, ``tools``,
  ``parallel_tool_calls``, ``functions`` — anything else (notably a top-level
  ``weight``) is an error; ``messages`` is a non-empty list;
- roles are ``system``, ``user``, ``assistant``, ``tool`` and legacy ``function``, each
  with its own allowed keys; content is a string or a list of content parts (text;
  ``image_url`` in user messages only, at most 10 images per example; ``refusal`` in
  assistant messages); empty content counts as missing unless the assistant calls a tool
  (OpenAI's own format checker flags it), except that a ``tool`` reply may be empty;
- ``weight`` only on assistant messages and only 0 or 1;
- assistant ``tool_calls``: ``[{"id", "type": "function", "function": {"name",
  "arguments": <JSON string>}}]``; a ``tool`` message answers a call of the assistant
  message before it (error otherwise). Calls may stay unanswered at the end: OpenAI's
  documented function-calling example ends on an assistant message with ``tool_calls``.
  A call left unanswered when the conversation goes on is a **warning** (the Chat
  Completions API refuses it; the fine-tuning guide says nothing);
- ``tools`` / ``functions`` definitions are well formed; function names match
  ``^[a-zA-Z0-9_-]{1,64}$``; a call of a function the example's ``tools`` do not define
  is a warning; ``parallel_tool_calls`` is a boolean, and several calls in one message
  while it is false are a warning;
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
from pipeline.openai_format.convert import openai_function_name, openai_tools, unsloth_to_openai
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
    "openai_function_name",
    "openai_tools",
    "unsloth_to_openai",
    "validate_openai",
    "validate_openai_file",
]
