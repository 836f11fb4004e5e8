"""``deckhand eval`` as a user runs it (a process with its own embedded
server and loopback site): a short subset of the bundled suite, one task of
each kind and the one-time-code login, with the offline brain and its
phrasings; a task whose run succeeds but whose state is wrong fails; a bad
task file is a clear error before anything starts. The whole suite is run
by hand (docs/eval.md gives its table)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from deckhand.eval.tasks import BUNDLED

DECKHAND = [sys.executable, "-m", "deckhand.cli"]
SOURCES = BUNDLED.resolve().parents[2]  # …/src, holding deckhand/eval/tasks
SUBSET = ["terminal/count-errors.toml", "terminal/json-total.toml",
          "browser/login-one-time-code.toml", "desktop/dialog-answer-no.toml"]
DESKTOP_READY = all(shutil.which(b) for b in ("Xvfb", "openbox", "xterm", "tesseract",
                                              "zenity")) and os.path.exists("/usr/bin/chromium")

# The run succeeds (the offline brain wrote what it was told) but the state
# is not what the check wants: the eval believes the machine, not the run.
WRONG = '''kind = "terminal"
goal = "Write Goodbye to bye.txt"
offline = 'write "Hello" to bye.txt'

[[checks]]
type = "file_equals"
path = "bye.txt"
text = "Goodbye"
'''


def deckhand(tmp_path: Path, *args: str, timeout: float = 150) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DECKHAND_")
           and k not in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "OPENAI_BASE_URL")}
    # this checkout's sources (worktrees share one virtualenv)
    env.update(DECKHAND_DATA_DIR=str(tmp_path / "var"), DECKHAND_BRAIN="offline",
               PYTHONPATH=str(SOURCES))
    return subprocess.run([*DECKHAND, *args], env=env, capture_output=True, text=True,
                          timeout=timeout, cwd=tmp_path, check=False)  # callers read returncode


@pytest.mark.skipif(not DESKTOP_READY, reason="desktop packages not installed "
                                              "(scripts/install-system-deps)")
def test_the_offline_brain_passes_a_subset_of_every_kind_through_the_cli(
        tmp_path: Path) -> None:
    (tmp_path / "wrong.toml").write_text(WRONG)
    tasks = [a for t in SUBSET for a in ("--tasks", str(BUNDLED / t))]
    r = deckhand(tmp_path, "eval", *tasks, "--tasks", str(tmp_path / "wrong.toml"),
                 "--concurrency", "3", "--out", str(tmp_path / "report.json"))
    assert r.returncode == 1, r.stdout + r.stderr  # one task failed: not every task passed
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["phrasing"] == "offline" and report["brains"] == ["offline"]
    by_id = {t["id"]: t for t in report["tasks"]}
    assert list(by_id) == [Path(t).stem for t in SUBSET] + ["wrong"]
    for name in SUBSET:
        task = by_id[Path(name).stem]
        assert task["passed"] and task["status"] == "succeeded", task
        assert task["steps"] >= 2 and task["credits"] > 0 and task["checks"], task
        assert all(c["passed"] for c in task["checks"]), task
    wrong = by_id["wrong"]
    assert wrong["status"] == "succeeded" and not wrong["passed"]
    assert wrong["checks"] == [{"passed": False, "detail": "bye.txt is 'Hello', not 'Goodbye'"}]
    assert report["totals"]["tasks"] == 5 and report["totals"]["passed"] == 4
    text = (tmp_path / "report.txt").read_text()
    assert "80 % passed" in text and "wrong: bye.txt is 'Hello', not 'Goodbye'" in text
    assert "passed login-one-time-code" in r.stdout and "FAILED wrong" in r.stdout


def test_a_bad_task_file_stops_the_eval_before_it_starts(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(WRONG.replace('type = "file_equals"', 'type = "file_is_nice"'))
    r = deckhand(tmp_path, "eval", "--tasks", str(bad), timeout=60)
    assert r.returncode == 2
    assert r.stderr.startswith(f"error: {bad}: checks #1: type must be one of file_exists"), \
        r.stderr
    assert not (tmp_path / "var" / "deckhand.db").exists()  # no server was started
