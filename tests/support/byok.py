"""Bring-your-own-key helpers shared by the LLM run and workflow tests
(test_llm_byok.py, test_llm_workflows.py): the caller's key, the settings of a
server whose own brain is offline, and a dump of the whole database to look
for that key in clear."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from deckhand.store.tables import metadata

BYOK_KEY = "sk-ant-api03-CALLERS-OWN-KEY-7f3a9c2e1b"


def byok_settings(fake: Any, **extra: Any) -> dict[str, Any]:
    """A server whose own brain is offline; BYOK reaches the fake provider."""
    return {"brain": "offline", "anthropic_base_url": fake.anthropic_url,
            "openai_base_url": fake.openai_url, **extra}


async def dump(db: Any) -> str:
    """Every row of every table, as text."""
    out = []
    for table in metadata.sorted_tables:
        async with db.read() as conn:
            rows = (await conn.execute(select(table))).all()
        out += [f"{table.name}: {tuple(r)}" for r in rows]
    return "\n".join(out)
