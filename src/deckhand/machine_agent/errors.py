"""The machine agent's one exception base, and the one place where an
exception becomes the ``error`` of an answer.

Every error the agent raises on purpose derives from :class:`AgentError`: its
message is written for the caller (it names what was refused and what to do
differently), so a boundary answers it as it is. Anything else that reaches a
boundary is not the agent's own (a library's failure, or
a bug) and is answered with its type named. Because the test is ``isinstance``
of the base, a new exception type needs no list updated anywhere.

The base derives from :class:`deckhand.errors.DeckhandError` (the agent may
import the base modules), so each type carries an :class:`ErrorCode` from the
application's one vocabulary.
"""

from __future__ import annotations

import logging

from deckhand.errors import DeckhandError, ErrorCode


class AgentError(DeckhandError):
    """Base of every error the machine agent raises on purpose."""

    code = ErrorCode.MACHINE_ERROR

    def __init__(self, message: str, *, code: ErrorCode | None = None) -> None:
        super().__init__(message, code=code)


def error_text(
    exc: Exception,
    *,
    failed: str = "machine agent error",
    parameters: bool = False,
    whole: bool = False,
    log: logging.Logger | None = None,
) -> str:
    """The ``error`` an answer carries for ``exc``.

    An :class:`AgentError` is answered with its message. With ``parameters``
    (the command dispatcher, which reads loosely typed caller parameters) a
    ``KeyError`` names the missing parameter and a ``ValueError`` or
    ``TypeError`` is the caller's too, answered with its message. Anything
    else is answered as ``"{failed}: {type}: {message}"`` — the message's first
    line, or with ``whole`` all of it — and, given ``log``, its traceback is
    logged there, since it is not a failure the agent meant.
    """
    if isinstance(exc, AgentError):
        return str(exc)
    if parameters and isinstance(exc, KeyError):
        return f"parameter {exc.args[0]!r} is required"
    if parameters and isinstance(exc, (ValueError, TypeError)):
        return str(exc)
    if log is not None:
        log.exception("%s: %s", failed, type(exc).__name__)
    text = str(exc) if whole else (str(exc).strip().splitlines() or [""])[0][:500]
    return f"{failed}: {type(exc).__name__}: {text}"
