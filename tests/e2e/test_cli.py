"""The CLI as a user runs it: real processes, a fresh data directory each."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

DECKHAND = [sys.executable, "-m", "deckhand.cli"]


def deckhand(tmp_path: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DECKHAND_")}
    env["DECKHAND_DATA_DIR"] = str(tmp_path / "var")
    return subprocess.run([*DECKHAND, *args], env=env, capture_output=True, text=True,
                          timeout=timeout, cwd=tmp_path, check=False)  # callers read returncode


def test_accounts_and_keys(tmp_path: Path) -> None:
    r = deckhand(tmp_path, "accounts", "create", "acme", "--credits", "250")
    assert r.returncode == 0, r.stderr
    assert "250 credits" in r.stdout
    assert deckhand(tmp_path, "accounts", "create", "acme").returncode != 0  # names are unique

    r = deckhand(tmp_path, "keys", "create", "--name", "ci", "--account", "acme", "--test",
                 "--scope", "runs:read", "--scope", "runs:write", "--json")
    assert r.returncode == 0, r.stderr
    created = json.loads(r.stdout.strip().splitlines()[-1])
    assert created["key"].startswith("sk-dh-test-") and created["scopes"] == ["runs:read",
                                                                             "runs:write"]
    r = deckhand(tmp_path, "keys", "create", "--name", "plain")
    assert r.returncode == 0, r.stderr
    last = r.stdout.strip().splitlines()[-1]
    assert last.startswith("sk-dh-live-") and len(last) == 11 + 64
    assert deckhand(tmp_path, "keys", "create", "--name", "x", "--scope", "nope").returncode != 0

    listed = deckhand(tmp_path, "accounts", "list").stdout
    assert "acme" in listed and "default" in listed

    secret = tmp_path / "var" / "secret_key"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert len(secret.read_text().strip()) == 64
    # the secret is kept: a key made earlier still authenticates after a restart of the CLI
    assert deckhand(tmp_path, "migrate").returncode == 0


def test_run_succeeds_and_fails_with_exit_codes(tmp_path: Path) -> None:
    ok = deckhand(tmp_path, "run", 'Run `echo deck-$((40+2))` and verify the output contains "deck-42"')
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "step 1/" in ok.stdout and "deck-42" in ok.stdout
    assert "result: succeeded" in ok.stdout

    bad = deckhand(tmp_path, "run", "Run `echo nope` and verify the output contains \"yes\"")
    assert bad.returncode == 1
    assert "VERIFICATION_FAILED" in bad.stdout

    unknown = deckhand(tmp_path, "run", "book me a flight to Lisbon")
    assert unknown.returncode == 1
    assert "OFFLINE_BRAIN_UNSUPPORTED" in unknown.stdout
    # machines made for these runs were removed with their processes
    machines = tmp_path / "var" / "machines"
    assert not machines.exists() or not any(machines.iterdir())


@pytest.mark.parametrize("args", [["serve", "--help"], ["worker", "--help"],
                                  ["machine-agent", "--help"], ["run", "--help"]])
def test_help(tmp_path: Path, args: list[str]) -> None:
    r = deckhand(tmp_path, *args)
    assert r.returncode == 0 and "Usage" in r.stdout
