"""The offline brain's instruction language: splitting, quoting, clause forms."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deckhand.brains.offline_parse import (
    FORMS,
    AskHuman,
    Click,
    FinishWith,
    Open,
    ParseError,
    Press,
    Run,
    Scroll,
    TypeOutput,
    TypeText,
    VerifyExitCode,
    VerifyFileContains,
    VerifyOutputContains,
    VerifyOutputMatches,
    VerifyScreenShows,
    WaitSeconds,
    WriteText,
    parse_task,
)

REFERENCE_TASK = """Run `python3 -m venv /tmp/env && /tmp/env/bin/pip install requests`, then run
`/tmp/env/bin/python -c "import requests; print(requests.__version__)"` and
verify the output matches `^2\\.`"""


def test_reference_task_parses_into_three_clauses() -> None:
    assert parse_task(REFERENCE_TASK) == (
        Run("python3 -m venv /tmp/env && /tmp/env/bin/pip install requests"),
        Run('/tmp/env/bin/python -c "import requests; print(requests.__version__)"'),
        VerifyOutputMatches(r"^2\."),
    )


def test_clauses_keep_their_source_text() -> None:
    clauses = parse_task("Run `a` then  VERIFY the exit code is 0.")
    assert not isinstance(clauses, ParseError)
    assert [c.source for c in clauses] == ["Run `a`", "VERIFY the exit code is 0"]


# --------------------------------------------------------------------------- forms


@pytest.mark.parametrize(
    ("text", "clause"),
    [
        ("run `ls -la`", Run("ls -la")),
        ('execute "echo hi"', Run("echo hi")),
        ("run 'echo \"x\"'", Run('echo "x"')),
        ("verify the output matches `^ok$`", VerifyOutputMatches("^ok$")),
        ("verify output matches '[0-9]+'", VerifyOutputMatches("[0-9]+")),
        ('verify the output contains "hello world"', VerifyOutputContains("hello world")),
        ("verify the exit code is 0", VerifyExitCode(0)),
        ("verify exit code is -1", VerifyExitCode(-1)),
        ('write "hi there" to /tmp/a.txt', WriteText("hi there", "/tmp/a.txt")),
        ('write "x" to "my notes"', WriteText("x", "my notes")),
        ('verify /tmp/a.txt contains "hi"', VerifyFileContains("/tmp/a.txt", "hi")),
        ('verify the file notes.md contains "hi"', VerifyFileContains("notes.md", "hi")),
        ('verify "output" contains "hi"', VerifyFileContains("output", "hi")),
        ("wait 5 seconds", WaitSeconds(5)),
        ("wait for 1 second", WaitSeconds(1)),
        ("wait 2.5 seconds", WaitSeconds(2.5)),
        ('ask a human "May I deploy?"', AskHuman("May I deploy?")),
        ('ask the human "ok?"', AskHuman("ok?")),
        ('finish with "all good"', FinishWith("all good")),
        ("open https://example.com/a?b=1,2", Open("https://example.com/a?b=1,2")),
        ("go to example.com", Open("example.com")),
        ("navigate to 'http://x.test/'", Open("http://x.test/")),
        ('click "Sign in"', Click("Sign in")),
        ('click on "OK"', Click("OK")),
        ('type "secret"', TypeText("secret")),
        ('type "bob" into "User name"', TypeText("bob", "User name")),
        ("press enter", Press("enter")),
        ("press ctrl+s", Press("ctrl+s")),
        ("scroll down", Scroll("down")),
        ("Scroll UP", Scroll("up")),
        ('verify the screen shows "Welcome"', VerifyScreenShows("Welcome")),
    ],
)
def test_each_form(text: str, clause: object) -> None:
    assert parse_task(text) == (clause,)


def test_keywords_are_case_insensitive() -> None:
    assert parse_task('RUN `X` THEN Verify The Output Contains "Y"') == (
        Run("X"),
        VerifyOutputContains("Y"),
    )


def test_forms_list_covers_every_clause_kind() -> None:
    assert len(FORMS) == 16
    assert any("run `CMD`" in form for form in FORMS)


# --------------------------------------------------------------------------- splitting


@pytest.mark.parametrize(
    "separator",
    [" then ", "; ", ";", " and then ", "\n", "\r\n", ", and ", ", then ", ", and then ",
     " and ", ". ", ".\n", ", ", " THEN ", ";\n\n", "\n- ", "\n2. ", "\n2) "],
)
def test_separators(separator: str) -> None:
    assert parse_task(f"run `a`{separator}run `b`") == (Run("a"), Run("b"))


def test_a_comma_splits_only_before_an_instruction_verb() -> None:
    assert parse_task('write "x" to /tmp/a,b, run `c`') == (WriteText("x", "/tmp/a,b"), Run("c"))
    error = parse_task("run `a`, please")
    assert isinstance(error, ParseError)
    assert error.clause == "run `a`, please"


def test_a_clause_may_wrap_over_lines() -> None:
    assert parse_task('type "bob"\n  into "User"\nand verify the output\ncontains "x"') == (
        TypeText("bob", "User"),
        VerifyOutputContains("x"),
    )


def test_list_markers_are_dropped() -> None:
    task = "1. run `a`\n2. run `b`\n- verify the exit code is 0\n* wait 1 second"
    assert parse_task(task) == (Run("a"), Run("b"), VerifyExitCode(0), WaitSeconds(1))


def test_trailing_punctuation_and_blank_clauses_are_dropped() -> None:
    assert parse_task("  ; run `a`.;; then\n\n  run `b`, ") == (Run("a"), Run("b"))


def test_separator_words_must_stand_alone() -> None:
    # "and"/"then" inside a bare argument are not separators
    assert parse_task("open https://x.test/then/and") == (Open("https://x.test/then/and"),)
    assert parse_task("run `a`;run `b`") == (Run("a"), Run("b"))


# --------------------------------------------------------------------------- quoting


def test_separators_inside_quotes_do_not_split() -> None:
    assert parse_task("run `a; b then c and d\nrun e`") == (Run("a; b then c and d\nrun e"),)
    assert parse_task('run `echo "x; y"` and verify the output contains "x; y"') == (
        Run('echo "x; y"'),
        VerifyOutputContains("x; y"),
    )


def test_every_quote_kind_holds_the_others() -> None:
    assert parse_task("run `echo \"it's\"`") == (Run("echo \"it's\""),)
    assert parse_task("run \"echo `date` 'x'\"") == (Run("echo `date` 'x'"),)
    assert parse_task("run 'echo \"`x`\"'") == (Run('echo "`x`"'),)


def test_apostrophes_inside_words_are_not_quotes() -> None:
    assert parse_task("ask a human 'isn't it done?'") == (AskHuman("isn't it done?"),)
    error = parse_task("don't run `x`")
    assert isinstance(error, ParseError)
    assert error.clause == "don't run `x`"


def test_an_unclosed_quote_is_an_error() -> None:
    error = parse_task('run `a` then verify the output contains "oops')
    assert isinstance(error, ParseError)
    assert "never closed" in error.reason
    assert error.clause == '"oops'


def test_quoted_values_are_kept_verbatim() -> None:
    assert parse_task("run `  spaced  `") == (Run("  spaced  "),)


# --------------------------------------------------------------------------- errors


def test_unknown_clause_is_quoted() -> None:
    error = parse_task("run `make` and then tell me whether the build passed")
    assert error == ParseError(
        "tell me whether the build passed",
        "it is not one of the instructions the offline brain knows",
    )


def test_known_verb_in_the_wrong_shape_gets_a_hint() -> None:
    error = parse_task("run the test suite")
    assert isinstance(error, ParseError)
    assert error.clause == "run the test suite"
    assert "run `CMD`" in error.reason


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "no instructions"),
        (" ;\n then ", "no instructions"),
        ("run ``", "empty"),
        ("run `   `", "empty"),
        ("wait 3601 seconds", "at most 3600"),
        ("verify the output matches `(`", "not a valid regular expression"),
        ('verify notes contains "x"', "expected"),  # a bare PATH needs / or .
        ("verify the exit code is zero", "expected"),
        ("wait 5", "expected"),
    ],
)
def test_parse_errors(text: str, reason: str) -> None:
    error = parse_task(text)
    assert isinstance(error, ParseError)
    assert reason in error.reason


def test_the_first_bad_clause_is_reported() -> None:
    error = parse_task("run `a`; fly; swim")
    assert isinstance(error, ParseError)
    assert error.clause == "fly"


# --------------------------------------------------------------------------- properties

_QUOTES = "\"`'"
_values = st.text(max_size=25).filter(lambda s: not all(q in s for q in _QUOTES))
_commands = _values.filter(lambda s: s.strip() != "")


def _pattern_ok(value: str) -> bool:
    try:
        re.compile(value)
    except re.error:
        return False
    return True


_bare_paths = st.from_regex(
    r"(/|\./|~/)([A-Za-z0-9_.-]{0,12}[A-Za-z0-9_-])?(/[A-Za-z0-9_-]{1,8})?", fullmatch=True
)
_bare_urls = st.from_regex(r"https?://[a-z0-9-]{1,10}\.[a-z]{2,4}/[A-Za-z0-9_/?=&%-]{0,12}",
                           fullmatch=True)
_bare_keys = st.from_regex(r"[a-z]{1,6}(\+[a-z0-9]{1,4}){0,2}", fullmatch=True).filter(
    lambda k: k not in ("and", "then")
)


@st.composite
def _rendered(draw: st.DrawFn) -> tuple[object, str]:
    """A supported clause and one way of writing it."""
    case = draw(st.sampled_from([str.lower, str.upper, str.capitalize]))

    def kw(*words: str) -> str:
        return " ".join(case(w) for w in words)

    def opt(word: str) -> str:
        return case(word) + " " if draw(st.booleans()) else ""

    def q(value: str) -> str:
        char = draw(st.sampled_from([c for c in _QUOTES if c not in value]))
        return f"{char}{value}{char}"

    def bare_or_quoted(bare: st.SearchStrategy[str]) -> tuple[str, str]:
        if draw(st.booleans()):
            value = draw(bare)
            return value, value
        value = draw(_values)
        return value, q(value)

    kind = draw(st.integers(0, 14))
    if kind == 0:
        value = draw(_commands)
        return Run(value), f"{kw(draw(st.sampled_from(['run', 'execute'])))} {q(value)}"
    if kind == 1:
        value = draw(_values.filter(_pattern_ok))
        written = f"{kw('verify')} {opt('the')}{kw('output matches')} {q(value)}"
        return VerifyOutputMatches(value), written
    if kind == 2:
        value = draw(_values)
        written = f"{kw('verify')} {opt('the')}{kw('output contains')} {q(value)}"
        return VerifyOutputContains(value), written
    if kind == 3:
        code = draw(st.integers(-5, 300))
        return VerifyExitCode(code), f"{kw('verify')} {opt('the')}{kw('exit code is')} {code}"
    if kind == 4:
        text = draw(_values)
        path, written = bare_or_quoted(_bare_paths)
        return WriteText(text, path), f"{kw('write')} {q(text)} {kw('to')} {written}"
    if kind == 5:
        text = draw(_values)
        path, written = bare_or_quoted(_bare_paths)
        lead = kw("verify") + " " + opt("the") + opt("file")
        return VerifyFileContains(path, text), f"{lead}{written} {kw('contains')} {q(text)}"
    if kind == 6:
        millis = draw(st.integers(0, 3_600_000))
        seconds = f"{millis / 1000:.3f}".rstrip("0").rstrip(".")
        unit = draw(st.sampled_from(["seconds", "second"]))
        return WaitSeconds(millis / 1000), f"{kw('wait')} {opt('for')}{seconds} {kw(unit)}"
    if kind == 7:
        value = draw(_values)
        article = draw(st.sampled_from(["a ", "the ", ""]))
        return AskHuman(value), f"{kw('ask')} {case(article)}{kw('human')} {q(value)}"
    if kind == 8:
        value = draw(_values)
        return FinishWith(value), f"{kw('finish with')} {q(value)}"
    if kind == 9:
        url, written = bare_or_quoted(_bare_urls)
        verb = draw(st.sampled_from(["open", "go to", "navigate to"]))
        return Open(url), f"{kw(verb)} {written}"
    if kind == 10:
        value = draw(_values)
        return Click(value), f"{kw('click')} {opt('on')}{q(value)}"
    if kind == 11:
        text = draw(_values)
        if draw(st.booleans()):
            return TypeText(text), f"{kw('type')} {q(text)}"
        label = draw(_values)
        return TypeText(text, label), f"{kw('type')} {q(text)} {kw('into')} {q(label)}"
    if kind == 12:
        key, written = bare_or_quoted(_bare_keys)
        return Press(key), f"{kw('press')} {written}"
    if kind == 13:
        direction = draw(st.sampled_from(["up", "down"]))
        return Scroll(direction), f"{kw('scroll')} {case(direction)}"
    value = draw(_values)
    return VerifyScreenShows(value), f"{kw('verify')} {opt('the')}{kw('screen shows')} {q(value)}"


_SEPARATORS = st.sampled_from(
    [" then ", "; ", ";", " and then ", "\n", "\r\n", ", and ", ", then ", " and ", ". ",
     ", ", " THEN ", " And ", ";\n", "\n\n", "\n- ", "\n3. ", ".\nThen, "]
)


@settings(max_examples=300)
@given(st.lists(st.tuples(_rendered(), _SEPARATORS), min_size=1, max_size=6),
       st.sampled_from(["", "1. ", "- ", "  "]), st.sampled_from(["", ".", "\n", " ;"]))
def test_rendered_clauses_parse_back(
    items: list[tuple[tuple[object, str], str]], prefix: str, suffix: str
) -> None:
    text = prefix
    for index, ((_, written), separator) in enumerate(items):
        text += written + (separator if index < len(items) - 1 else suffix)
    assert parse_task(text) == tuple(clause for (clause, _), _ in items)


@settings(max_examples=200)
@given(st.lists(_rendered(), min_size=1, max_size=5))
def test_canonical_render_parses_back(items: list[tuple[object, str]]) -> None:
    clauses = tuple(clause for clause, _ in items)
    text = " then ".join(clause.render() for clause in clauses)  # type: ignore[attr-defined]
    assert parse_task(text) == clauses


def test_long_runs_of_whitespace_parse_in_linear_time() -> None:
    import time

    started = time.perf_counter()
    for text in ("run `a`" + " " * 50_000 + "x", "run `a`" + "\n \t" * 20_000 + "and run `b`"):
        parse_task(text)
    assert time.perf_counter() - started < 1.0


def test_type_the_output_with_and_without_a_field() -> None:
    assert parse_task('run `cat code.txt`, type the output into "One-time code" '
                      "and then Type The Output") == (
        Run("cat code.txt"), TypeOutput("One-time code"), TypeOutput())
    assert TypeOutput("Code").render() == 'type the output into "Code"'
    assert TypeOutput().render() == "type the output"
    # "the output" is not a quoted text: an extra word is not another form
    bad = parse_task("type the output now")
    assert isinstance(bad, ParseError) and "type the output" in bad.reason
