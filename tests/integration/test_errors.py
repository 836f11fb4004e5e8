"""Every error a client can cause comes back in the contract's envelope."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import LiveServer
from tests.support.contract import assert_error

pytestmark = pytest.mark.asyncio


async def test_request_id_on_every_response(sqlite_server: LiveServer) -> None:
    async with sqlite_server.client() as c:
        for r in [await c.get("/v1/health"), await c.get("/v1/keys"), await c.get("/nope")]:
            assert r.headers["x-coasty-request-id"].startswith("req_")
        a, b = await c.get("/v1/health"), await c.get("/v1/health")
        assert a.headers["x-coasty-request-id"] != b.headers["x-coasty-request-id"]


async def test_unknown_route_and_wrong_method(sqlite_server: LiveServer) -> None:
    async with sqlite_server.client() as c:
        assert_error(await c.get("/v1/nothing-here"), 404, "NOT_FOUND")
        r = await c.delete("/v1/health")
        err = assert_error(r, 405, "METHOD_NOT_ALLOWED")
        assert "DELETE" in err["message"]
        assert r.headers["allow"] == "GET, HEAD"


async def test_allow_names_every_method_of_the_path(sqlite_server: LiveServer) -> None:
    key = await sqlite_server.key()
    mid = "00000000-0000-0000-0000-000000000000"
    async with sqlite_server.client(key) as c:
        for method, path, allow in [
            ("OPTIONS", "/v1/keys", "GET, HEAD, POST"),  # GET and POST are two routes
            ("TRACE", "/v1/runs", "GET, HEAD, POST"),
            ("PUT", f"/v1/machines/{mid}", "DELETE, GET, HEAD, PATCH"),
            # a path spelled out by a route is not a machine id for another route
            ("PATCH", "/v1/machines/health", "GET, HEAD"),
            ("POST", "/v1/machines/pricing", "GET, HEAD"),
        ]:
            r = await c.request(method, path)
            assert_error(r, 405, "METHOD_NOT_ALLOWED")
            assert r.headers["allow"] == allow, (method, path)
        assert (await c.get("/v1/machines/health")).status_code == 200


async def test_odd_values_in_paths_and_queries(sqlite_server: LiveServer) -> None:
    key = await sqlite_server.key()
    async with sqlite_server.client(key) as c:
        # no request can have used this key, so it is unknown (the contract has no 422 here)
        err = assert_error(await c.get("/v1/idempotency/%C2%84"), 404, "NOT_FOUND")
        assert "Idempotency-Key" in err["message"]
        assert_error(await c.get("/v1/usage", params={"period": "0000-01"}), 422,
                     "VALIDATION_ERROR")
        r = await c.get("/v1/usage", params={"period": "9999-12"})  # the last month there is
        assert r.status_code == 200, r.text
        assert r.json()["period"] == "9999-12"


async def test_malformed_json_and_validation(sqlite_server: LiveServer) -> None:
    key = await sqlite_server.key()
    async with sqlite_server.client(key) as c:
        r = await c.post("/v1/keys", content=b'{"name": ', headers={"content-type": "application/json"})
        err = assert_error(r, 400, "VALIDATION_ERROR")
        assert "JSON" in err["message"]
        err = assert_error(await c.post("/v1/keys", json={}), 422, "VALIDATION_ERROR")
        assert "name" in err["message"] and err["suggestion"]
        err = assert_error(await c.post("/v1/keys", json={"name": "a", "color": "red"}), 422,
                           "VALIDATION_ERROR")
        assert "color" in err["message"]
        err = assert_error(await c.post("/v1/keys", json={"name": "   "}), 422, "VALIDATION_ERROR")
        assert "name" in err["message"]
        err = assert_error(await c.post("/v1/keys", json={"name": "a", "scopes": None}), 422,
                           "VALIDATION_ERROR")
        assert "scopes" in err["message"]
        assert_error(await c.get("/v1/usage", params={"period": "2026-13"}), 422,
                     "VALIDATION_ERROR")
        # curl's default form content type still means JSON here
        r = await c.post("/v1/keys", content=b'{"name": "from-curl"}',
                         headers={"content-type": "application/x-www-form-urlencoded"})
        assert r.status_code == 200, r.text


async def test_oversized_body(tmp_path, sqlite_url) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import make_settings, serve

    async with serve(make_settings(tmp_path, sqlite_url, max_body_bytes=1000)) as s:
        key = await s.key()
        async with s.client(key) as c:
            err = assert_error(await c.post("/v1/keys", json={"name": "x" * 2000}), 413,
                               "PAYLOAD_TOO_LARGE")
            assert "1000" in err["message"]

            async def chunks():  # type: ignore[no-untyped-def]
                for _ in range(5):
                    yield b"x" * 500

            # no Content-Length: the cap applies while streaming
            r = await c.post("/v1/keys", content=chunks(),
                             headers={"content-type": "application/json"})
            assert_error(r, 413, "PAYLOAD_TOO_LARGE")


async def test_unexpected_error_is_500_without_detail(sqlite_server: LiveServer) -> None:
    from deckhand.api.app import create_app

    broken = create_app(services=sqlite_server.services)

    @broken.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internal detail /etc/passwd")

    transport = httpx.ASGITransport(app=broken, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        r = await c.get("/boom")
    err = assert_error(r, 500, "INTERNAL_ERROR")
    assert err["retryable"] is True
    assert "secret" not in r.text and "Traceback" not in r.text
