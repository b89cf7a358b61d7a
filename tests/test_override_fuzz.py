"""Hostile configs: any override a user can type for any suite composes or is one HarnessError (one
line, exit 2), never a traceback. Property-based over keys (real, nested, unknown) and values (huge
numbers, non-finite floats, odd strings, lists, Hydra syntax)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runners import registry
from runners.config import compose, config_keys
from runners.errors import HarnessError

SUITES = sorted(registry.BUILTIN)

values = st.one_of(
    st.integers(min_value=-(10 ** 30), max_value=10 ** 30).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["nan", "inf", "-inf", "1e999", "true", "null", "None", "[]", "[1,2", "{a:1}", "${oops}",
                     "'", '"', "\\", "=", "a=b", ",", "1,2", "range(3)", "choice(a,b)", "???", "~", "", " "]),
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12),
    st.lists(st.integers(min_value=-5, max_value=10 ** 12), max_size=4).map(lambda xs: "[" + ",".join(map(str, xs)) + "]"),
)


def keys_of(name: str) -> list[str]:
    return config_keys(registry.load(name).config) + ["no_such_key", "threads.x", "+extra", "~threads", "a b"]


@pytest.mark.slow
@pytest.mark.parametrize("suite", SUITES)
def test_any_override_composes_or_is_one_line(suite):
    keys = keys_of(suite)

    @settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
    @given(key=st.sampled_from(keys), value=values)
    def check(key, value):
        override = f"{key}={value}"
        try:
            compose(registry.load(suite), "smoke", [override])
        except HarnessError as exc:
            assert "\n" not in str(exc).strip(), str(exc)

    check()
