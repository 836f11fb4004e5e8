"""The dashboard's session cookie and CSRF token (dashboard/session.py)."""

from __future__ import annotations

from deckhand.dashboard import session as sess

SECRET = b"s3cret"
NOW = 1_800_000_000.0


def test_a_cookie_names_its_key_and_expiry_and_nothing_else() -> None:
    cookie = sess.make_cookie(SECRET, "key_abc", ttl=60, now=NOW)
    assert cookie.startswith("v1.key_abc.1800000060.")
    claim = sess.read_cookie(SECRET, cookie, now=NOW + 59)
    assert claim == sess.SessionClaim("key_abc", 1_800_000_060)


def test_expired_forged_or_foreign_cookies_are_no_session() -> None:
    cookie = sess.make_cookie(SECRET, "key_abc", ttl=60, now=NOW)
    assert sess.read_cookie(SECRET, cookie, now=NOW + 60) is None  # expired
    assert sess.read_cookie(b"other", cookie, now=NOW) is None  # another server's secret
    _, key, exp, mac = cookie.split(".")
    assert sess.read_cookie(SECRET, f"v1.key_xyz.{exp}.{mac}", now=NOW) is None  # other key
    assert sess.read_cookie(SECRET, f"v1.{key}.9999999999.{mac}", now=NOW) is None  # extended
    for junk in ("", "v1", "v2.key_abc.1800000060." + mac, "v1.key_abc.soon." + mac,
                 cookie + ".x"):
        assert sess.read_cookie(SECRET, junk, now=NOW) is None, junk


def test_the_csrf_token_belongs_to_one_session() -> None:
    a = sess.make_cookie(SECRET, "key_a", now=NOW)
    b = sess.make_cookie(SECRET, "key_b", now=NOW)
    token = sess.csrf_token(SECRET, a)
    assert sess.csrf_ok(SECRET, a, token)
    assert not sess.csrf_ok(SECRET, b, token)
    assert not sess.csrf_ok(b"other", a, token)
    assert not sess.csrf_ok(SECRET, a, None) and not sess.csrf_ok(SECRET, a, "")
    assert token != sess.csrf_token(SECRET, b)
    # the token is no MAC of the session itself (another purpose)
    assert token != a.rsplit(".", 1)[1]
