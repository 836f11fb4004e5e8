"""``create_app(settings)``: the FastAPI application. The lifespan builds the
services and tears them down; routes get them by injection."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from deckhand import __version__
from deckhand.api import (
    account,
    inference,
    llm_keys,
    machines,
    recordings,
    run_feed,
    runs,
    schedules,
    sessions,
    triggers,
    usage_daily,
    workflows,
)
from deckhand.api.errors import (
    deckhand_error_handler,
    http_exception_handler,
    unhandled_error_handler,
)
from deckhand.api.middleware import RequestContextMiddleware
from deckhand.config import Settings
from deckhand.dashboard import routes as dashboard
from deckhand.errors import DeckhandError
from deckhand.mcp.http import PATH as MCP_PATH
from deckhand.mcp.http import McpEndpoint
from deckhand.services import Services

ROUTERS = (account.r, usage_daily.r, machines.r, run_feed.r, runs.r, recordings.r, workflows.r,
           llm_keys.r, inference.predict_r, sessions.r, schedules.r, triggers.r)


def create_app(settings: Settings | None = None, services: Services | None = None) -> FastAPI:
    """Build the app. Pass ``services`` to share already-built ones (the CLI's
    embedded server); otherwise the lifespan builds them from ``settings``."""
    settings = settings or (services.settings if services else Settings())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        svc = services or await Services.build(settings)
        app.state.services = svc
        if services is None:
            await svc.start()
        try:
            async with mcp_endpoint.running():
                yield
        finally:
            if services is None:
                await svc.close()

    app = FastAPI(
        title="Deckhand API",
        version=__version__,
        summary="Self-hosted computer-use agents; wire-compatible with the Coasty public API v1.",
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
    )
    app.add_middleware(RequestContextMiddleware, max_body_bytes=settings.max_body_bytes)
    app.add_exception_handler(DeckhandError, deckhand_error_handler)
    app.add_exception_handler(RequestValidationError, deckhand_error_handler)
    app.add_exception_handler(StarletteHTTPException, http_exception_handler)
    app.add_exception_handler(Exception, unhandled_error_handler)
    for r in ROUTERS:
        app.include_router(r)
    app.include_router(dashboard.r)  # the web dashboard at / (its pages read the /v1 API)
    app.mount(dashboard.STATIC_PATH, dashboard.static_files(), name="dashboard-static")
    mcp_endpoint = McpEndpoint(app)
    app.router.add_route(MCP_PATH, mcp_endpoint, methods=["GET", "POST", "DELETE"],
                         include_in_schema=False)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            from fastapi.openapi.utils import get_openapi

            schema = get_openapi(title=app.title, version=app.version, summary=app.summary,
                                 routes=app.routes)
            schema.setdefault("components", {})["securitySchemes"] = {
                "apiKey": {"type": "apiKey", "name": "X-API-Key", "in": "header"},
                "bearerAuth": {"type": "http", "scheme": "bearer"},
            }
            schema["security"] = [{"apiKey": []}, {"bearerAuth": []}]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    @app.get("/.well-known/openapi.json", include_in_schema=False)
    async def well_known_openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    return app
