"""Lua scripts run inside Redis, loaded with importlib.resources."""

from __future__ import annotations

from importlib import resources


def load(name: str) -> str:
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")
