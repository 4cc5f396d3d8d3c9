"""A wire-compatible Anthropic + OpenAI server on 127.0.0.1 for tests.

The real ``anthropic`` and ``openai`` SDK clients talk to it through ``base_url``.
It serves:

- Anthropic ``POST /v1/messages`` (JSON and SSE stream);
- OpenAI ``POST /v1/chat/completions`` (JSON and SSE), ``POST /v1/responses`` (JSON and
  SSE), ``POST /v1/files``, ``POST /v1/fine_tuning/jobs``, ``GET /v1/fine_tuning/jobs/{id}``,
  ``GET /v1/fine_tuning/jobs`` (list), ``GET /v1/fine_tuning/jobs/{id}/events``,
  ``POST /v1/fine_tuning/jobs/{id}/cancel``.

Tests script it: queued reply texts, injected :class:`~tests.fakes.faults.Fault` s per
route (429 with retry-after, 500, slow answers, malformed JSON, truncated streams,
dropped connections), a job status script, holds that block a route until released,
and a log of every request.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.fakes.faults import Fault

Route = str
"""``messages``, ``chat``, ``responses``, ``files``, ``ft_create``, ``ft_list``, ``ft_get``, ``ft_events``,
``ft_cancel``."""


@dataclass
class Recorded:
    """One request as the server saw it."""

    method: str
    path: str
    route: Route
    headers: dict[str, str]
    body: Any


@dataclass
class FakeJob:
    """A fine-tuning job and where it is in its status script."""

    obj: dict[str, Any]
    script: list[str]
    step: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)


def _words(value: Any) -> int:
    return len(json.dumps(value).split())


class FakeLLMServer:
    """Start with ``with FakeLLMServer() as srv:``; point SDKs at :attr:`anthropic_url` / :attr:`openai_url`."""

    def __init__(self) -> None:
        self.replies: deque[str] = deque()
        """Texts for the next completions, in order; when empty, :attr:`default_reply` is used."""
        self.default_reply = "All done."
        self.replies_for: dict[str, deque[str]] = {}
        """Texts for completions whose request body mentions a marker (e.g. the schema name
        ``ReviewFindings``), served before :attr:`replies`; see :meth:`reply_for`."""
        self.cached_tokens = 0
        """Cached input tokens reported in usage."""
        self.faults: dict[Route, deque[Fault]] = {}
        self.requests: list[Recorded] = []
        self.files: dict[str, dict[str, Any]] = {}
        self.jobs: dict[str, FakeJob] = {}
        self.job_script = ["validating_files", "queued", "running", "succeeded"]
        """Statuses a new job shows on successive GETs (the last one sticks)."""
        self.job_error: str = "training data failed validation"
        self.refuse_new_jobs: str | None = None
        """When set, job creation answers 400 with this message."""
        self.reply_fn: Callable[[dict[str, Any]], str] | None = None
        """When set, the text of every completion is ``reply_fn(request body)``: answers that do not
        depend on the order concurrent requests arrive in."""
        self.reported_model: str | None = None
        """When set, completions say this model answered instead of the one asked for (a server may
        report anything, even the key it was sent)."""
        self.latency_s = 0.0
        """Seconds every completion waits before answering (the bench's stand-in for model time)."""
        self.fail_after: tuple[int, Fault] | None = None
        """``(k, fault)``: every completion request after the first ``k`` is answered with ``fault``."""
        self.completions = 0
        """Completion requests seen (messages, chat, responses)."""
        self.in_flight = 0
        self.max_in_flight = 0
        """Most completion requests being served at the same time."""
        self._holds: dict[Route, threading.Event] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02},
                                        name="fake-llm", daemon=True)

    # --- lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> FakeLLMServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for ev in self._holds.values():
            ev.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    @property
    def base(self) -> str:
        """``http://127.0.0.1:<port>``."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def anthropic_url(self) -> str:
        """Base URL for ``anthropic.Anthropic(base_url=…)``."""
        return self.base

    @property
    def openai_url(self) -> str:
        """Base URL for ``openai.OpenAI(base_url=…)``."""
        return self.base + "/v1"

    # --- scripting -------------------------------------------------------------------------

    def inject(self, route: Route, *faults: Fault) -> None:
        """Queue faults for the next requests on ``route``."""
        with self._lock:
            self.faults.setdefault(route, deque()).extend(faults)

    def reply(self, *texts: str) -> None:
        """Queue completion texts."""
        self.replies.extend(texts)

    def reply_for(self, marker: str, *texts: str) -> None:
        """Queue completion texts for requests whose body contains ``marker``, e.g. a scripted review
        answer for ``ReviewFindings`` requests while other calls get :attr:`replies`."""
        with self._lock:
            self.replies_for.setdefault(marker, deque()).extend(texts)

    def hold(self, route: Route) -> None:
        """Block requests on ``route`` until :meth:`release`."""
        self._holds[route] = threading.Event()

    def release(self, route: Route) -> None:
        """Let held requests on ``route`` through."""
        ev = self._holds.pop(route, None)
        if ev is not None:
            ev.set()

    def calls(self, route: Route, method: str | None = None) -> list[Recorded]:
        """Requests seen on ``route``."""
        return [r for r in self.requests if r.route == route and (method is None or r.method == method)]

    # --- internals used by the handler -----------------------------------------------------

    def _next_fault(self, route: Route) -> Fault | None:
        with self._lock:
            q = self.faults.get(route)
            return q.popleft() if q else None

    def _next_text(self, body: Any = None) -> str:
        if self.reply_fn is not None and isinstance(body, dict):
            return self.reply_fn(body)
        with self._lock:
            if body is not None and self.replies_for:
                raw = json.dumps(body)
                for marker, queue in self.replies_for.items():
                    if queue and marker in raw:
                        return queue.popleft()
            return self.replies.popleft() if self.replies else self.default_reply

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):06d}"

    def _wait_hold(self, route: Route) -> None:
        ev = self._holds.get(route)
        if ev is not None:
            ev.wait(30)


_ROUTES: list[tuple[str, re.Pattern[str], Route]] = [
    ("POST", re.compile(r"^/v1/messages$"), "messages"),
    ("POST", re.compile(r"^/v1/chat/completions$"), "chat"),
    ("POST", re.compile(r"^/v1/responses$"), "responses"),
    ("POST", re.compile(r"^/v1/files$"), "files"),
    ("POST", re.compile(r"^/v1/fine_tuning/jobs$"), "ft_create"),
    ("GET", re.compile(r"^/v1/fine_tuning/jobs$"), "ft_list"),
    ("GET", re.compile(r"^/v1/fine_tuning/jobs/(?P<id>[^/]+)$"), "ft_get"),
    ("GET", re.compile(r"^/v1/fine_tuning/jobs/(?P<id>[^/]+)/events$"), "ft_events"),
    ("POST", re.compile(r"^/v1/fine_tuning/jobs/(?P<id>[^/]+)/cancel$"), "ft_cancel"),
]


def _match(method: str, path: str) -> tuple[Route, re.Match[str]] | None:
    for m, pattern, route in _ROUTES:
        match = pattern.match(path)
        if m == method and match:
            return route, match
    return None


def _handler_for(server: FakeLLMServer) -> type[BaseHTTPRequestHandler]:
    class Handler(_Handler):
        srv = server

    return Handler


class _Handler(BaseHTTPRequestHandler):
    srv: FakeLLMServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stall per call

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    # --- plumbing ----------------------------------------------------------------------------

    def _dispatch(self, method: str) -> None:
        path = self.path.split("?", 1)[0]
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        found = _match(method, path)
        if found is None:
            self._json(404, {"error": {"message": f"no route {method} {path}", "type": "not_found"}})
            return
        route, match = found
        ctype = self.headers.get("content-type", "")
        body: Any = raw
        if "json" in ctype and raw:
            body = json.loads(raw)
        self.srv.requests.append(Recorded(method, self.path, route, {k.lower(): v for k, v in self.headers.items()},
                                          body))
        self.srv._wait_hold(route)
        late_fault = self._model_time() if route in ("messages", "chat", "responses") else None
        fault = late_fault or self.srv._next_fault(route)
        if fault is not None and self._apply(fault, route, body):
            return
        handler = getattr(self, f"_r_{route}")
        handler(body, match.groupdict(), raw)

    def _model_time(self) -> Fault | None:
        """Count a completion, spend :attr:`latency_s` in flight; the ``fail_after`` fault once past k calls.

        A request counts as in flight only before its answer is written, so a client that waits for
        each answer never shows two at once.
        """
        srv = self.srv
        with srv._lock:
            srv.completions += 1
            srv.in_flight += 1
            srv.max_in_flight = max(srv.max_in_flight, srv.in_flight)
            late = srv.fail_after[1] if srv.fail_after and srv.completions > srv.fail_after[0] else None
        try:
            time.sleep(srv.latency_s)
        finally:
            with srv._lock:
                srv.in_flight -= 1
        return late

    def _apply(self, fault: Fault, route: Route, body: Any) -> bool:
        """Serve the fault; True when the response is complete."""
        if fault.kind == "slow":
            time.sleep(fault.seconds)
            return False
        if fault.kind == "drop":
            self.close_connection = True
            self.connection.close()
            return True
        if fault.kind == "stream_error":
            kind, _, message = fault.message.partition(":")
            events = self._stream_events(route, body)
            self._sse([*events[:2], ("error", {"type": "error", "error": {"type": kind, "message": message}})],
                      close=True)
            return True
        if fault.kind == "body":
            self.send_response(200)
            self.send_header("content-type", fault.content_type)
            self.send_header("content-length", str(len(fault.body)))
            self.end_headers()
            self.wfile.write(fault.body)
            return True
        if fault.kind == "usage":
            answer = self._complete(route, body)
            if fault.usage is None:
                answer.pop("usage", None)
            else:
                answer["usage"] = fault.usage
            self._json(200, answer)
            return True
        if fault.kind == "malformed":
            data = b'{"id": "broken", "content": [ {"type": "text", "te'
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return True
        if fault.kind == "truncated":
            if isinstance(body, dict) and body.get("stream"):
                events = self._stream_events(route, body)
                self._sse(events[: max(1, len(events) // 2)], close=True)
            else:
                # announce a full body, send half of it, hang up
                data = json.dumps(self._complete(route, body)).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[: len(data) // 2])
                self.wfile.flush()
                self.close_connection = True
            return True
        headers = {}
        if fault.retry_after is not None:
            headers["retry-after"] = fault.retry_after if isinstance(fault.retry_after, str) \
                else f"{fault.retry_after:g}"
        if route == "messages":
            kinds = {429: "rate_limit_error", 529: "overloaded_error", 400: "invalid_request_error",
                     401: "authentication_error", 404: "not_found_error"}
            err = {"type": "error", "error": {"type": kinds.get(fault.status, "api_error"), "message": fault.message}}
        else:
            err = {"error": {"message": fault.message, "type": "invalid_request_error" if fault.status < 500
                             else "server_error", "param": None, "code": None}}
        self._json(fault.status, err, headers)
        return True

    def _json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.send_header("x-request-id", self.srv._new_id("req_"))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
            self.wfile.write(data)

    def _sse(self, events: list[tuple[str | None, Any]], *, close: bool = False) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("connection", "close")
        self.end_headers()
        self.close_connection = True
        try:
            for name, data in events:
                chunk = (f"event: {name}\n" if name else "") + "data: " + (
                    data if isinstance(data, str) else json.dumps(data)) + "\n\n"
                self.wfile.write(chunk.encode())
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass

    # --- completions -------------------------------------------------------------------------

    def _usage(self, body: dict[str, Any], text: str) -> tuple[int, int, int]:
        prompt = _words(body.get("messages") or body.get("input") or "") + _words(body.get("system") or "")
        return prompt, max(1, len(text.split())), min(self.srv.cached_tokens, prompt)

    def _complete(self, route: Route, body: dict[str, Any]) -> dict[str, Any]:
        text = self.srv._next_text(body)
        tin, tout, cached = self._usage(body, text)
        model = self.srv.reported_model or body.get("model", "unknown")
        if route == "messages":
            return {"id": self.srv._new_id("msg_"), "type": "message", "role": "assistant", "model": model,
                    "content": [{"type": "text", "text": text}], "stop_reason": "end_turn",
                    "stop_sequence": None,
                    "usage": {"input_tokens": tin - cached, "output_tokens": tout,
                              "cache_read_input_tokens": cached, "cache_creation_input_tokens": 0}}
        if route == "chat":
            return {"id": self.srv._new_id("chatcmpl-"), "object": "chat.completion", "created": int(time.time()),
                    "model": model, "system_fingerprint": None,
                    "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                                 "message": {"role": "assistant", "content": text, "refusal": None}}],
                    "usage": {"prompt_tokens": tin, "completion_tokens": tout, "total_tokens": tin + tout,
                              "prompt_tokens_details": {"cached_tokens": cached}}}
        return self._response_obj(body, text, "completed")

    def _response_obj(self, body: dict[str, Any], text: str, status: str) -> dict[str, Any]:
        tin, tout, cached = self._usage(body, text)
        done = status == "completed"
        return {"id": self.srv._new_id("resp_"), "object": "response", "created_at": int(time.time()),
                "status": status, "model": self.srv.reported_model or body.get("model", "unknown"), "error": None,
                "incomplete_details": None, "instructions": body.get("instructions"),
                "parallel_tool_calls": True, "tool_choice": "auto", "tools": [], "temperature": 1.0,
                "top_p": 1.0, "metadata": {},
                "output": [{"type": "message", "id": self.srv._new_id("msg_"), "status": "completed",
                            "role": "assistant",
                            "content": [{"type": "output_text", "text": text, "annotations": []}]}] if done else [],
                "usage": {"input_tokens": tin, "input_tokens_details": {"cached_tokens": cached},
                          "output_tokens": tout, "output_tokens_details": {"reasoning_tokens": 0},
                          "total_tokens": tin + tout} if done else None}

    def _stream_events(self, route: Route, body: dict[str, Any]) -> list[tuple[str | None, Any]]:
        full = self._complete(route, body)
        if route == "messages":
            text = full["content"][0]["text"]
            start = {**full, "content": [], "stop_reason": None,
                     "usage": {**full["usage"], "output_tokens": 1}}
            parts = [text[i:i + 8] for i in range(0, len(text), 8)] or [""]
            return [("message_start", {"type": "message_start", "message": start}),
                    ("content_block_start", {"type": "content_block_start", "index": 0,
                                             "content_block": {"type": "text", "text": ""}}),
                    *[("content_block_delta", {"type": "content_block_delta", "index": 0,
                                               "delta": {"type": "text_delta", "text": p}}) for p in parts],
                    ("content_block_stop", {"type": "content_block_stop", "index": 0}),
                    ("message_delta", {"type": "message_delta",
                                       "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                                       "usage": {"output_tokens": full["usage"]["output_tokens"]}}),
                    ("message_stop", {"type": "message_stop"})]
        if route == "chat":
            text = full["choices"][0]["message"]["content"]
            base = {"id": full["id"], "object": "chat.completion.chunk", "created": full["created"],
                    "model": full["model"]}
            parts = [text[i:i + 8] for i in range(0, len(text), 8)]
            chunks: list[tuple[str | None, Any]] = [
                (None, {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                             "finish_reason": None}]})]
            chunks += [(None, {**base, "choices": [{"index": 0, "delta": {"content": p}, "finish_reason": None}]})
                       for p in parts]
            chunks.append((None, {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}))
            chunks.append((None, {**base, "choices": [], "usage": full["usage"]}))
            chunks.append((None, "[DONE]"))
            return chunks
        text = full["output"][0]["content"][0]["text"]
        seq = itertools.count()
        created = {**full, "status": "in_progress", "output": [], "usage": None}
        parts = [text[i:i + 8] for i in range(0, len(text), 8)]
        out: list[tuple[str | None, Any]] = [
            ("response.created", {"type": "response.created", "response": created, "sequence_number": next(seq)})]
        out += [("response.output_text.delta", {"type": "response.output_text.delta", "item_id": "msg_1",
                                                "output_index": 0, "content_index": 0, "delta": p,
                                                "logprobs": [], "sequence_number": next(seq)}) for p in parts]
        out.append(("response.completed", {"type": "response.completed", "response": full,
                                           "sequence_number": next(seq)}))
        return out

    def _completion_route(self, route: Route, body: Any) -> None:
        if body.get("stream"):
            self._sse(self._stream_events(route, body))
        else:
            self._json(200, self._complete(route, body))

    def _r_messages(self, body: Any, params: dict[str, str], raw: bytes) -> None:
        self._completion_route("messages", body)

    def _r_chat(self, body: Any, params: dict[str, str], raw: bytes) -> None:
        self._completion_route("chat", body)

    def _r_responses(self, body: Any, params: dict[str, str], raw: bytes) -> None:
        self._completion_route("responses", body)

    # --- files and fine-tuning ---------------------------------------------------------------

    def _r_files(self, body: Any, params: dict[str, str], raw: bytes) -> None:
        text = raw.decode("utf-8", "replace")
        purpose = re.search(r'name="purpose"\r\n\r\n([^\r]+)', text)
        fname = re.search(r'filename="([^"]+)"', text)
        fid = self.srv._new_id("file-")
        obj = {"id": fid, "object": "file", "bytes": len(raw), "created_at": int(time.time()),
               "filename": fname.group(1) if fname else "upload.jsonl",
               "purpose": purpose.group(1) if purpose else "fine-tune", "status": "processed"}
        self.srv.files[fid] = obj
        self._json(200, obj)

    def _job_error(self, status: int, message: str) -> None:
        self._json(status, {"error": {"message": message, "type": "invalid_request_error", "param": None,
                                      "code": None}})

    def _r_ft_create(self, body: Any, params: dict[str, str], raw: bytes) -> None:
        if self.srv.refuse_new_jobs:
            self._job_error(400, self.srv.refuse_new_jobs)
            return
        if body.get("training_file") not in self.srv.files:
            self._job_error(400, f"invalid training_file: {body.get('training_file')}")
            return
        jid = self.srv._new_id("ftjob-")
        obj = {"id": jid, "object": "fine_tuning.job", "created_at": int(time.time()), "error": None,
               "fine_tuned_model": None, "finished_at": None, "hyperparameters": {"n_epochs": "auto"},
               "model": body["model"], "organization_id": "org-fake", "result_files": [], "seed": 0,
               "status": self.srv.job_script[0], "trained_tokens": None, "training_file": body["training_file"],
               "validation_file": None, "method": body.get("method")}
        job = FakeJob(obj, list(self.srv.job_script))
        job.events.append(self._event(f"Created fine-tuning job: {jid}"))
        self.srv.jobs[jid] = job
        self._json(200, obj)

    def _event(self, message: str, level: str = "info") -> dict[str, Any]:
        return {"object": "fine_tuning.job.event", "id": self.srv._new_id("ftevent-"),
                "created_at": int(time.time()), "level": level, "message": message, "type": "message",
                "data": {}}

    def _r_ft_get(self, body: Any, params: dict[str, str], raw: bytes) -> None:
        job = self.srv.jobs.get(params["id"])
        if job is None:
            self._json(404, {"error": {"message": f"job {params['id']} not found", "type": "invalid_request_error",
                                       "param": None, "code": None}})
            return
        if job.obj["status"] not in ("succeeded", "failed", "cancelled") and job.step + 1 < len(job.script):
            job.step += 1
            status = job.script[job.step]
            job.obj["status"] = status
            job.events.append(self._event(f"Job status: {status}"))
            if status == "succeeded":
                job.obj["fine_tuned_model"] = f"ft:{job.obj['model']}:coord::{job.obj['id'][-6:]}"
                job.obj["trained_tokens"] = 12345
                job.obj["finished_at"] = int(time.time())
            elif status == "failed":
                job.obj["error"] = {"code": "invalid_training_file", "message": self.srv.job_error, "param": None}
                job.events.append(self._event(self.srv.job_error, "error"))
        self._json(200, job.obj)

    def _r_ft_list(self, body: Any, params: dict[str, str], raw: bytes) -> None:
        jobs = [j.obj for j in reversed(self.srv.jobs.values())]
        self._json(200, {"object": "list", "data": jobs, "has_more": False})

    def _r_ft_events(self, body: Any, params: dict[str, str], raw: bytes) -> None:
        job = self.srv.jobs[params["id"]]
        newest_first = list(reversed(job.events))
        self._json(200, {"object": "list", "data": newest_first, "has_more": False})

    def _r_ft_cancel(self, body: Any, params: dict[str, str], raw: bytes) -> None:
        job = self.srv.jobs[params["id"]]
        job.obj["status"] = "cancelled"
        self._json(200, job.obj)
