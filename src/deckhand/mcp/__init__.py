"""Deckhand's MCP server (stdio and streamable HTTP)."""
