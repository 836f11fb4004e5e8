"""The words every layer shares: actions and their results, screens, steps and
decisions, verdicts and grounding answers, the Machine protocol and the clock.
Imports nothing of Deckhand but the base modules (``errors``, ``ids``)."""
