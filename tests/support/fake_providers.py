"""A fake model provider on loopback that speaks the real wire protocols —
Anthropic's Messages API, OpenAI's Responses API and Chat Completions — so the
official SDKs (which use their own HTTP stack) can be driven through
``base_url`` with scripted replies.

    async with fake_provider() as fake:
        fake.reply(anthropic_message(tool_use("computer", {"action": "left_click",
                                                           "coordinate": [640, 400]})))
        brain = AnthropicBrain(Provider("anthropic", SecretStr(fake.api_key),
                                        fake.anthropic_url), model="m")

- ``reply(payload)`` queues the next answer (built with the helpers below);
- ``fail(status, times)`` answers errors first (429, 529, 500…);
- verification calls (a ``report_verdict`` tool is offered) take their answer
  from ``verdicts`` (default: pass); grounding calls (a ``point`` tool) from
  ``points``;
- a wrong key gets the provider's 401;
- every request is kept in ``requests`` (path, headers without the key, body);
- prompt caching as the providers document it (:mod:`tests.support.prompt_cache`):
  more than four ``cache_control`` blocks is Anthropic's 400, a
  ``previous_response_id`` the fake does not hold OpenAI's 400
  ``previous_response_not_found`` (``forget()`` drops them all); with
  ``measured`` True the answers' usage is counted from the requests — the
  prompt's tokens and the parts the cache wrote and read — instead of the
  scripted input tokens, and each agent request's count is kept in ``usages``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from deckhand import ids
from deckhand.core.clock import utcnow
from deckhand.core.screens import Observation
from deckhand.engine.worker import Worker
from deckhand.machines.fake import FakeMachine, screen_image
from deckhand.store import accounts as accounts_store
from deckhand.store import machines as machines_store
from tests.conftest import LiveServer, make_settings, serve
from tests.support.prompt_cache import AnthropicCache, BreakpointError, OpenAICache, Usage
from tests.support.servers import started

DEFAULT_KEY = "sk-fake-provider-key-0123456789abcdef"
_ids = itertools.count(1)


def _id(prefix: str) -> str:
    return f"{prefix}_{next(_ids):06d}"


# --------------------------------------------------------------------------- Anthropic


def text(t: str) -> dict[str, Any]:
    return {"type": "text", "text": t}


def tool_use(name: str, tool_input: dict[str, Any], id: str | None = None) -> dict[str, Any]:
    return {"type": "tool_use", "id": id or _id("toolu"), "name": name, "input": tool_input}


def anthropic_message(*blocks: dict[str, Any], usage: tuple[int, int] = (120, 30),
                      stop_reason: str | None = None) -> dict[str, Any]:
    return {"protocol": "anthropic", "content": list(blocks), "usage": usage,
            "stop_reason": stop_reason}


# --------------------------------------------------------------------------- OpenAI Responses


def computer_call(action: dict[str, Any] | None = None, *, actions: list[dict[str, Any]] | None
                  = None, pending: list[dict[str, Any]] = (),  # type: ignore[assignment]
                  call_id: str | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {"type": "computer_call", "id": _id("cu"),
                            "call_id": call_id or _id("call"), "status": "completed",
                            "pending_safety_checks": list(pending)}
    if action is not None:
        item["action"] = action
    if actions is not None:
        item["actions"] = actions
    return item


def function_call(name: str, arguments: dict[str, Any], call_id: str | None = None
                  ) -> dict[str, Any]:
    return {"type": "function_call", "id": _id("fc"), "call_id": call_id or _id("call"),
            "name": name, "arguments": json.dumps(arguments), "status": "completed"}


def output_message(t: str) -> dict[str, Any]:
    return {"type": "message", "id": _id("msg"), "role": "assistant", "status": "completed",
            "content": [{"type": "output_text", "text": t, "annotations": []}]}


def reasoning(summary: str) -> dict[str, Any]:
    return {"type": "reasoning", "id": _id("rs"),
            "summary": [{"type": "summary_text", "text": summary}]}


def responses(*items: dict[str, Any], usage: tuple[int, int] = (150, 40)) -> dict[str, Any]:
    return {"protocol": "responses", "output": list(items), "usage": usage}


# --------------------------------------------------------------------------- Chat Completions


def chat(content: str | None = None, calls: list[tuple[str, dict[str, Any]]] = (),  # type: ignore[assignment]
         usage: tuple[int, int] = (90, 25)) -> dict[str, Any]:
    return {"protocol": "chat", "content": content, "usage": usage,
            "tool_calls": [{"id": _id("call"), "type": "function",
                            "function": {"name": n, "arguments": json.dumps(a)}}
                           for n, a in calls]}


# --------------------------------------------------------------------------- the server


@dataclass
class Recorded:
    path: str
    query: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class FakeProvider:
    api_key: str = DEFAULT_KEY
    url: str = ""
    replies: deque[dict[str, Any]] = field(default_factory=deque)
    failures: deque[int] = field(default_factory=deque)
    verdicts: deque[tuple[bool, str]] = field(default_factory=deque)
    points: deque[tuple[int, int] | None] = field(default_factory=deque)
    requests: list[Recorded] = field(default_factory=list)
    models: list[str] = field(default_factory=lambda: ["fake-vision-1"])
    delay: float = 0.0  # seconds before each answer (a slow model)
    measured: bool = False  # usage counted from the requests, with the prompt cache
    usages: list[Usage] = field(default_factory=list)  # each measured agent request's
    anthropic_cache: AnthropicCache = field(default_factory=AnthropicCache)
    openai_cache: OpenAICache = field(default_factory=OpenAICache)
    chat_cache: OpenAICache = field(default_factory=OpenAICache)

    def forget(self) -> None:
        """Drop every stored response, as OpenAI does when they expire."""
        self.openai_cache.forget()

    @property
    def anthropic_url(self) -> str:
        return self.url

    @property
    def openai_url(self) -> str:
        return self.url + "/v1"

    def reply(self, *payloads: dict[str, Any]) -> None:
        self.replies.extend(payloads)

    def fail(self, status: int, times: int = 1) -> None:
        self.failures.extend([status] * times)

    def verdict(self, passed: bool, reason: str = "") -> None:
        self.verdicts.append((passed, reason or ("looks done" if passed else "not done")))

    def bodies(self, path_suffix: str = "") -> list[dict[str, Any]]:
        return [r.body for r in self.requests if r.path.endswith(path_suffix)]

    def agent_bodies(self) -> list[dict[str, Any]]:
        """The requests of agent steps (not verification or grounding)."""
        return [r.body for r in self.requests if r.path != "/v1/models"
                and not ({"report_verdict", "point"} & _tool_names(r.body))]


def _tool_names(body: dict[str, Any]) -> set[str]:
    names = set()
    for t in body.get("tools") or []:
        names.add(t.get("name") or (t.get("function") or {}).get("name") or t.get("type"))
    return names


def _measure(fake: FakeProvider, protocol: str, body: dict[str, Any]
             ) -> tuple[Usage | None, list[Any]]:
    """The request through the provider's cache: its usage when ``measured``,
    and (Responses) the conversation it continues."""
    conversation: list[Any] = []
    usage = None
    if protocol == "anthropic":
        usage = fake.anthropic_cache.request(body)
    elif protocol == "responses":
        conversation = fake.openai_cache.conversation(body)
        head = [*(body.get("tools") or []), {"instructions": body.get("instructions")}]
        usage = fake.openai_cache.request(head, conversation)
    elif protocol == "chat":
        usage = fake.chat_cache.request(list(body.get("tools") or []),
                                        list(body.get("messages") or []))
    return (usage if fake.measured else None), conversation


def _error(protocol: str, status: int, message: str, code: str | None = None,
           param: str | None = None) -> JSONResponse:
    headers = {"retry-after-ms": "10"} if status in (429, 529) or status >= 500 else {}
    if protocol == "anthropic":
        kind = {400: "invalid_request_error", 401: "authentication_error",
                429: "rate_limit_error", 529: "overloaded_error"}.get(status, "api_error")
        return JSONResponse({"type": "error", "error": {"type": kind, "message": message}},
                            status_code=status, headers=headers)
    code = code or {401: "invalid_api_key", 429: "rate_limit_exceeded"}.get(status,
                                                                            "server_error")
    return JSONResponse({"error": {"message": message, "type": "invalid_request_error",
                                   "param": param, "code": code}},
                        status_code=status, headers=headers)


def _app(fake: FakeProvider) -> Starlette:
    async def handle(request: Request, protocol: str) -> JSONResponse:
        body = await request.json() if request.method == "POST" else {}
        headers = {k: v for k, v in request.headers.items()
                   if k not in ("x-api-key", "authorization")}
        fake.requests.append(Recorded(request.url.path, request.url.query, headers, body))
        if fake.delay:
            await asyncio.sleep(fake.delay)
        # Anthropic takes x-api-key (this SDK sends the key as a Bearer token); OpenAI Bearer
        given = request.headers.get("authorization", "").removeprefix("Bearer ")
        if protocol == "anthropic" and "x-api-key" in request.headers:
            given = request.headers["x-api-key"]
        if given != fake.api_key:
            message = ("invalid x-api-key" if protocol == "anthropic"
                       else "Incorrect API key provided: sk-fak***************cdef.")
            return _error(protocol, 401, message)
        if fake.failures:
            status = fake.failures.popleft()
            return _error(protocol, status, {429: "Rate limited", 529: "Overloaded"}.get(
                status, "Internal error"))
        if protocol == "models":
            return JSONResponse({"object": "list", "data": [
                {"id": m, "object": "model", "created": 0, "owned_by": "fake"}
                for m in fake.models]})
        try:
            usage, conversation = _measure(fake, protocol, body)
        except BreakpointError as exc:
            return _error(protocol, 400, str(exc))
        except KeyError:
            return _error(protocol, 400, "Previous response with id "
                          f"'{body.get('previous_response_id')}' not found.",
                          code="previous_response_not_found", param="previous_response_id")
        tools = _tool_names(body)
        if "report_verdict" in tools:
            passed, reason = fake.verdicts.popleft() if fake.verdicts else (True, "looks done")
            return JSONResponse(_forced(protocol, body, "report_verdict",
                                        {"passed": passed, "reason": reason}))
        if "point" in tools:
            at = fake.points.popleft() if fake.points else None
            args = {"found": False} if at is None else {"found": True, "x": at[0], "y": at[1]}
            return JSONResponse(_forced(protocol, body, "point", args))
        if not fake.replies:
            return _error(protocol, 500, "fake provider: no scripted reply left")
        payload = fake.replies.popleft()
        assert payload["protocol"] == protocol, (payload["protocol"], protocol)
        if usage is not None:
            fake.usages.append(usage)
        answer = _render(payload, body.get("model", "fake"), usage)
        if protocol == "responses":
            fake.openai_cache.keep(answer["id"], conversation, answer["output"])
        return JSONResponse(answer)

    async def messages(request: Request) -> JSONResponse:
        return await handle(request, "anthropic")

    async def responses_(request: Request) -> JSONResponse:
        return await handle(request, "responses")

    async def chat_(request: Request) -> JSONResponse:
        return await handle(request, "chat")

    async def models(request: Request) -> JSONResponse:
        return await handle(request, "models")

    return Starlette(routes=[
        Route("/v1/messages", messages, methods=["POST"]),
        Route("/v1/responses", responses_, methods=["POST"]),
        Route("/v1/chat/completions", chat_, methods=["POST"]),
        Route("/v1/models", models, methods=["GET"]),
    ])


def _forced(protocol: str, body: dict[str, Any], name: str, args: dict[str, Any]
            ) -> dict[str, Any]:
    model = body.get("model", "fake")
    if protocol == "anthropic":
        return _render(anthropic_message(tool_use(name, args), usage=(50, 10)), model)
    if protocol == "responses":
        return _render(responses(function_call(name, args), usage=(50, 10)), model)
    return _render(chat(None, [(name, args)], usage=(50, 10)), model)


def _render(payload: dict[str, Any], model: str, usage: Usage | None = None
            ) -> dict[str, Any]:
    protocol = payload["protocol"]
    i, o = payload["usage"]
    created = read = 0
    if usage is not None:
        i, created, read = usage.input_tokens, usage.cache_creation, usage.cache_read
    if protocol == "anthropic":
        content = payload["content"]
        stop = payload["stop_reason"] or (
            "tool_use" if any(b["type"] == "tool_use" for b in content) else "end_turn")
        return {"id": _id("msg"), "type": "message", "role": "assistant", "model": model,
                "content": content, "stop_reason": stop, "stop_sequence": None,
                "usage": {"input_tokens": i - created - read, "output_tokens": o,
                          "cache_creation_input_tokens": created,
                          "cache_read_input_tokens": read}}
    if protocol == "responses":
        return {"id": _id("resp"), "object": "response", "created_at": 1700000000,
                "model": model, "status": "completed", "output": payload["output"],
                "parallel_tool_calls": True, "tool_choice": "auto", "tools": [],
                "usage": {"input_tokens": i, "output_tokens": o, "total_tokens": i + o,
                          "input_tokens_details": {"cached_tokens": read},
                          "output_tokens_details": {"reasoning_tokens": 0}}}
    message: dict[str, Any] = {"role": "assistant", "content": payload["content"]}
    if payload["tool_calls"]:
        message["tool_calls"] = payload["tool_calls"]
    return {"id": _id("chatcmpl"), "object": "chat.completion", "created": 1700000000,
            "model": model, "choices": [{"index": 0, "message": message,
                                         "finish_reason": "tool_calls" if payload["tool_calls"]
                                         else "stop"}],
            "usage": {"prompt_tokens": i, "completion_tokens": o, "total_tokens": i + o,
                      "prompt_tokens_details": {"cached_tokens": read}}}


@contextlib.asynccontextmanager
async def fake_provider(api_key: str = DEFAULT_KEY) -> AsyncIterator[FakeProvider]:
    fake = FakeProvider(api_key=api_key)
    server = uvicorn.Server(uvicorn.Config(_app(fake), host="127.0.0.1", port=0,
                                           log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve())
    fake.url = f"http://127.0.0.1:{await started(server, task, 'the fake provider')}"
    try:
        yield fake
    finally:
        server.should_exit = True
        await task


# --------------------------------------------------------------------------- screens


def screenshot(width: int, height: int, color: tuple[int, int, int] = (30, 90, 160),
               fmt: str = "JPEG") -> bytes:
    """An image of a known size, with a white box so screens can differ."""
    return screen_image(width, height, color, fmt)


def observation(width: int, height: int, **kw: Any) -> Observation:
    return Observation(screenshot_jpeg=screenshot(width, height, **kw), width=width,
                       height=height)


# --------------------------------------------------------------------------- servers and machines
# (servers wired to the fake provider, and a fake machine with a screen)

# every provider variable cleared, so the developer's environment never leaks in
NO_PROVIDERS: dict[str, Any] = {
    "anthropic_api_key": None, "anthropic_base_url": None, "openai_api_key": None,
    "openai_base_url": None, "openai_compat_base_url": None, "openai_compat_api_key": None,
    "openai_compat_model": None, "llm_max_retries": 0, "llm_timeout_seconds": 20,
}


def provider_settings(provider: str, fake: FakeProvider) -> dict[str, Any]:
    """Settings that make ``provider`` the server's managed brain, on ``fake``."""
    if provider == "anthropic":
        return {"brain": "anthropic", "anthropic_api_key": fake.api_key,
                "anthropic_base_url": fake.anthropic_url}
    if provider == "openai":
        return {"brain": "openai", "openai_api_key": fake.api_key,
                "openai_base_url": fake.openai_url}
    return {"brain": "openai_compat", "openai_compat_base_url": fake.openai_url,
            "openai_compat_api_key": fake.api_key, "openai_compat_model": "fake-vision-1"}


@contextlib.asynccontextmanager
async def llm_server(tmp_path: Path, database_url: str, **overrides: Any
                     ) -> AsyncIterator[LiveServer]:
    async with serve(make_settings(tmp_path, database_url,
                                   **{**NO_PROVIDERS, **overrides})) as s:
        yield s





async def screen_machine_row(server: LiveServer, account: str = "acme") -> str:
    """A machine row for runs that a :class:`FakeMachine` serves."""
    machine_id = ids.new_uuid()
    async with server.services.db.write() as conn:
        acct = await accounts_store.find_by_name(conn, account)
        assert acct is not None
        await machines_store.insert(conn, {
            "id": machine_id, "account_id": acct.id, "mode": "live", "display_name": "screen",
            "status": "running", "metadata": {}, "provider": "remote", "created_at": utcnow(),
        })
    return machine_id


@contextlib.asynccontextmanager
async def screen_worker(server: LiveServer, machine: FakeMachine) -> AsyncIterator[Worker]:
    """A worker (the server runs none) whose machines are all ``machine``."""
    svc = server.services

    async def connect(_machine_id: str) -> FakeMachine:
        return machine

    worker = Worker(svc.db, svc.notifier, svc.lifecycle, connect, slots=1,
                    lease_seconds=svc.settings.lease_seconds,
                    poll_seconds=svc.settings.poll_interval_seconds, brains=svc.brains)
    worker.start()
    try:
        yield worker
    finally:
        await asyncio.wait_for(worker.stop(), 10)
