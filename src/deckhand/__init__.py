"""Deckhand: a self-hosted platform for autonomous computer-use agents."""

__version__ = "0.1.0"
