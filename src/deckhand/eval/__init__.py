"""``deckhand eval``: a suite of tasks on local machines, run as ordinary
runs through the public API and scored by checks that read the machine's
state afterwards (docs/eval.md).

tasks.py (the file format and its loader), checks.py (the checks), site.py +
pages.py + wheels.py (the loopback site the browser and package tasks use),
state.py (the machine's state and a task's setup, over the API), runner.py
(one task, the suite), report.py (the table), command.py (the CLI command).
It is a client: it talks to a server only through ``deckhand.client``.
"""
