"""The SSRF guard on webhook URLs."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from deckhand.errors import ErrorCode, ValidationFailed
from deckhand.events.webhooks import check_webhook_url, parse_allow_hosts

NONE: frozenset[str] = frozenset()
PUBLIC_V4 = "93.184.216.34"
PUBLIC_V6 = "2606:4700:4700::1111"


async def refused(url: str, allow: frozenset[str] = NONE) -> str:
    with pytest.raises(ValidationFailed) as info:
        await check_webhook_url(url, allow)
    assert info.value.code is ErrorCode.VALIDATION_ERROR
    assert "webhook_url" in info.value.message
    return info.value.message


@pytest.fixture
async def fake_dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """Answer getaddrinfo from a table (no real DNS in unit tests)."""
    table: dict[str, list[str]] = {}
    loop = asyncio.get_running_loop()

    async def getaddrinfo(host: str, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        out = []
        for addr in table[host]:
            if ":" in addr:
                out.append((socket.AF_INET6, socket.SOCK_STREAM, 6, "", (addr, port, 0, 0)))
            else:
                out.append((socket.AF_INET, socket.SOCK_STREAM, 6, "", (addr, port)))
        return out

    monkeypatch.setattr(loop, "getaddrinfo", getaddrinfo)
    return table


async def test_public_https_literals_pass() -> None:
    await check_webhook_url(f"https://{PUBLIC_V4}/hook", NONE)
    await check_webhook_url(f"https://[{PUBLIC_V6}]:8443/hook?x=1", NONE)


async def test_public_hostname_passes(fake_dns: dict[str, list[str]]) -> None:
    fake_dns["hooks.example.com"] = [PUBLIC_V4, PUBLIC_V6]
    await check_webhook_url("https://hooks.example.com/a/b", NONE)
    await check_webhook_url("https://HOOKS.example.com./a/b", NONE)


async def test_http_refused() -> None:
    message = await refused(f"http://{PUBLIC_V4}/hook")
    assert "https" in message


@pytest.mark.parametrize("url", ["ftp://example.com/x", "file:///etc/passwd", "example.com/x",
                                 "gopher://127.0.0.1/", "https://", "https:///path",
                                 "https://example.com:99999/"])
async def test_bad_urls_refused(url: str) -> None:
    await refused(url)


async def test_userinfo_refused() -> None:
    assert "user" in await refused(f"https://user:pw@{PUBLIC_V4}/hook")
    await refused(f"https://user@{PUBLIC_V4}/hook")
    await refused(f"https://user@{PUBLIC_V4}/hook", frozenset({PUBLIC_V4}))


async def test_overlong_url_refused() -> None:
    await refused(f"https://{PUBLIC_V4}/" + "a" * 2100)


@pytest.mark.parametrize("host", [
    "127.0.0.1", "127.1.2.3", "10.0.0.5", "172.16.0.1", "192.168.1.1", "169.254.169.254",
    "100.64.0.1", "0.0.0.0", "224.0.0.1", "255.255.255.255", "240.0.0.1",
    "[::1]", "[::]", "[fe80::1]", "[fc00::1]", "[ff02::1]",
    "[::ffff:127.0.0.1]", "[::ffff:10.0.0.1]", "[::ffff:169.254.169.254]",
    "[2002:7f00:1::1]",  # 6to4 wrapping 127.0.0.1
    "[64:ff9b::7f00:1]",  # NAT64 wrapping 127.0.0.1
])
async def test_non_public_literals_refused(host: str) -> None:
    message = await refused(f"https://{host}/hook")
    assert "non-public" in message


async def test_hostnames_resolving_to_private_addresses_refused(
    fake_dns: dict[str, list[str]],
) -> None:
    fake_dns["internal.example.com"] = ["10.1.2.3"]
    fake_dns["metadata.example.com"] = ["169.254.169.254"]
    fake_dns["mixed.example.com"] = [PUBLIC_V4, "127.0.0.1"]  # any bad address refuses
    fake_dns["v6loop.example.com"] = ["::1"]
    fake_dns["mapped.example.com"] = ["::ffff:127.0.0.1"]
    for host in fake_dns:
        message = await refused(f"https://{host}/hook")
        assert host in message


async def test_unresolvable_host_refused(fake_dns: dict[str, list[str]]) -> None:
    assert "resolved" in await refused("https://no-such-host.invalid/hook")


async def test_allow_hosts_permit_private_and_http(fake_dns: dict[str, list[str]]) -> None:
    allow = parse_allow_hosts("127.0.0.1, [::1], Receiver.Internal ,")
    assert allow == frozenset({"127.0.0.1", "::1", "receiver.internal"})
    await check_webhook_url("http://127.0.0.1:8123/hook", allow)
    await check_webhook_url("https://127.0.0.1/hook", allow)
    await check_webhook_url("http://[::1]:9000/hook", allow)
    # an allowed name is not resolved at all (it may be a private DNS name)
    await check_webhook_url("http://receiver.internal/hook", allow)
    await check_webhook_url("https://RECEIVER.internal./hook", allow)
    # the allowance is per host, not per address
    await refused("http://10.0.0.1/hook", allow)
    await refused("https://[::ffff:127.0.0.1]/hook", allow)


async def test_real_resolution_of_localhost_is_refused() -> None:
    # getaddrinfo("localhost") is answered from /etc/hosts, no network needed
    assert "localhost" in await refused("https://localhost/hook")


def test_parse_allow_hosts_empty() -> None:
    assert parse_allow_hosts("") == frozenset()
    assert parse_allow_hosts(" , ,") == frozenset()
