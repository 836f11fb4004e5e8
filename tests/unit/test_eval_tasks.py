"""The eval's task files: the bundled suite, the loader's clear errors, and
the report's totals (no machine; the checks against real machines are in
tests/integration/test_eval_checks.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from deckhand.brains.offline_parse import ParseError, parse_task
from deckhand.eval.checks import Checked, Command, FileEquals, FormPost
from deckhand.eval.report import Report
from deckhand.eval.runner import EvalOptions, TaskResult
from deckhand.eval.tasks import BUNDLED, KINDS, TaskFileError, fill, load_task, load_tasks

GOOD = '''kind = "terminal"
goal = "Write hi to a.txt"
offline = 'write "hi" to a.txt'

[[checks]]
type = "file_equals"
path = "a.txt"
text = "hi"
'''


def test_the_bundled_suite_has_every_kind_and_offline_phrasings_the_grammar_reads() -> None:
    tasks = load_tasks()
    assert len(tasks) >= 20
    kinds = {t.kind for t in tasks}
    assert kinds == set(KINDS)
    assert all(sum(t.kind == k for t in tasks) >= 6 for k in KINDS)
    assert len({t.id for t in tasks}) == len(tasks)
    values = {"site": "http://127.0.0.1:1/s/abc", "port": "8123"}
    for task in tasks:
        assert task.checks, task.id
        clauses = parse_task(fill(task.offline, values))
        assert not isinstance(clauses, ParseError), (task.id, clauses)
        assert task.goal != task.offline
    # the categories the issue names are covered
    categories = {t.category for t in tasks}
    assert {"files", "packages", "processes", "forms", "tables", "login", "downloads",
            "text editor", "spreadsheet", "dialogs"} <= categories


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_a_directory_a_glob_and_a_file_load_and_ids_default_to_the_file_name(
        tmp_path: Path) -> None:
    write(tmp_path, "mine/one.toml", GOOD)
    write(tmp_path, "mine/sub/two.toml", GOOD.replace('kind', 'id = "second"\nkind'))
    assert [t.id for t in load_tasks([str(tmp_path / "mine")])] == ["one", "second"]
    assert [t.id for t in load_tasks([str(tmp_path / "mine" / "*.toml")])] == ["one"]
    assert [t.id for t in load_tasks([str(tmp_path / "mine/sub/two.toml")])] == ["second"]
    task = load_task(tmp_path / "mine" / "one.toml")
    assert (task.max_steps, task.timeout_seconds, task.checks) == (
        30, 300, (FileEquals(path="a.txt", text="hi"),))
    assert load_tasks() == load_tasks([str(BUNDLED)])


@pytest.mark.parametrize(("text", "message"), [
    ("kind = ", "not valid TOML"),
    ('colour = "red"\n' + GOOD, "unknown field(s) colour (the fields are"),
    (GOOD.replace('kind = "terminal"', 'kind = "phone"'), "kind must be one of terminal, "
                                                          "browser, desktop, not 'phone'"),
    (GOOD.replace('goal = "Write hi to a.txt"', ""), "goal is missing"),
    (GOOD.replace('goal = "Write hi to a.txt"', 'goal = "  "'), "goal is empty"),
    (GOOD.replace('goal = "Write hi to a.txt"', "goal = 3"), "goal must be a string"),
    (GOOD.split("[[checks]]")[0], "at least one [[checks]] table is needed"),
    (GOOD.replace('"file_equals"', '"vibes"'), "checks #1: type must be one of"),
    (GOOD.replace('text = "hi"', ""), "checks #1: file_equals: text is missing"),
    (GOOD.replace('text = "hi"', 'text = "hi"\nsize = 2'),
     "checks #1: file_equals: unknown field(s) size"),
    (GOOD + '[[checks]]\ntype = "file_matches"\npath = "a"\nregex = "(("\n',
     "checks #2: file_matches: regex is not a valid regular expression"),
    (GOOD + '[[checks]]\ntype = "command"\ncommand = "true"\nexit_code = "0"\n',
     "checks #2: command: exit_code must be a whole number"),
    (GOOD.replace("Write hi", "Write hi on {{host}}"), "unknown placeholder(s) {{host}}"),
    (GOOD + '[setup]\nfiles = { "/etc/passwd" = "x" }\n', "must be a relative path inside"),
    (GOOD + '[setup]\ncommands = [""]\n', "setup.commands must be a list of non-empty"),
    (GOOD + '[setup]\nwindows = "x"\n', "setup: unknown field(s) windows"),
    ("max_steps = 0\n" + GOOD, "max_steps must be a whole number from 1 to 1000, not 0"),
    (GOOD.replace("kind", 'id = "Has Spaces"\nkind'), "id 'Has Spaces' must be"),
])
def test_a_bad_task_file_is_a_clear_error_naming_the_file(tmp_path: Path, text: str,
                                                          message: str) -> None:
    path = write(tmp_path, "bad.toml", text)
    with pytest.raises(TaskFileError) as caught:
        load_tasks([str(path)])
    assert caught.value.message.startswith(f"{path}: "), caught.value.message
    assert message in caught.value.message, caught.value.message


def test_duplicate_ids_and_an_empty_spec_are_errors(tmp_path: Path) -> None:
    write(tmp_path, "a/same.toml", GOOD)
    write(tmp_path, "b/same.toml", GOOD)
    with pytest.raises(TaskFileError, match="the id 'same' is already used by"):
        load_tasks([str(tmp_path / "a"), str(tmp_path / "b")])
    with pytest.raises(TaskFileError, match="no task files there"):
        load_tasks([str(tmp_path / "nothing-*.toml")])


def test_placeholders_are_filled_in_checks_too() -> None:
    post = FormPost(form="f", fields={"site": "{{site}}/x"})
    assert post.filled({"site": "http://h"}) == FormPost(form="f", fields={"site": "http://h/x"})
    command = Command(command="curl {{site}}:{{ port }}")
    assert command.filled({"site": "h", "port": "1"}) == Command(command="curl h:1")


def test_the_report_totals_the_tasks_and_saves_json_and_text(tmp_path: Path) -> None:
    results = [
        TaskResult(id="a", kind="terminal", category="files", passed=True, status="succeeded",
                   steps=2, input_tokens=100, cached_tokens=80, output_tokens=10, credits=10,
                   wall_seconds=1.5, checks=[Checked(True, "a.txt is 'hi'")]),
        TaskResult(id="b", kind="browser", category="forms", passed=False, status="succeeded",
                   steps=3, input_tokens=50, output_tokens=5, credits=15, wall_seconds=2.0,
                   checks=[Checked(False, "the site received no post of 'signup'")]),
    ]
    report = Report(results, 3.25, EvalOptions(phrasing="natural", model="anthropic"))
    assert report.totals() == {
        "tasks": 2, "passed": 1, "pass_rate": 0.5, "steps": 5, "input_tokens": 150,
        "cached_tokens": 80, "output_tokens": 15, "credits": 25, "task_seconds": 3.5,
        "wall_seconds": 3.25}
    assert report.failures() == ["b: the site received no post of 'signup'"]
    json_path, text_path = report.save(tmp_path / "out" / "eval")
    assert json_path.name == "eval.json" and text_path.name == "eval.txt"
    import json

    saved = json.loads(json_path.read_text())
    assert saved["totals"]["pass_rate"] == 0.5 and saved["tasks"][1]["checks"][0]["passed"] is False
    text = text_path.read_text()
    assert "50 % passed" in text and "1/2" in text and "b: the site received no post" in text
