"""Lazy suite registry: names map to "module:Class" strings, imported only when used.

Sources, later ones overriding earlier: the built-in table below, the
``paperclub.suites`` entry-point group (third-party packages), and the environment
variable ``PAPERCLUB_EXTRA_SUITES`` ("name=module:Class,name2=module:Class2"), which is how
out-of-tree suites (tests, notebooks) plug in without being installed.
"""

from __future__ import annotations

import importlib
import os
from importlib.metadata import entry_points

from runners.errors import HarnessError

BUILTIN: dict[str, str] = {
    "pacbayes": "suites.pacbayes:PacBayesSuite",
    "infcompute": "suites.infcompute:InfComputeSuite",
    "ssd": "suites.ssd:SSDSuite",
    "lewm": "suites.lewm:LeWMSuite",
    "dmpc": "suites.dmpc:DMPCSuite",
}

ENV_VAR = "PAPERCLUB_EXTRA_SUITES"


def available() -> dict[str, str]:
    table = dict(BUILTIN)
    for ep in entry_points(group="paperclub.suites"):
        table[ep.name] = ep.value
    for item in filter(None, (s.strip() for s in os.environ.get(ENV_VAR, "").split(","))):
        name, sep, target = item.partition("=")
        if not sep or ":" not in target:
            raise HarnessError(f"{ENV_VAR}: expected name=module:Class, got {item!r}")
        table[name.strip()] = target.strip()
    return table


def load(name: str):
    """Import and return the Suite class registered as ``name``."""
    table = available()
    if name not in table:
        known = ", ".join(sorted(table)) or "(none registered)"
        raise HarnessError(f"unknown suite {name!r}; known suites: {known}")
    module_name, _, attr = table[name].partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise HarnessError(f"suite {name!r}: cannot import {table[name]}: {exc}") from exc
    if getattr(cls, "name", None) != name:
        raise HarnessError(f"suite {name!r}: {table[name]} declares name {getattr(cls, 'name', None)!r}")
    return cls
