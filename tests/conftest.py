from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TOY = ("toy=tests.toy_suite:ToySuite,toy_needs=tests.toy_suite:NeedsMissingSuite,"
       "toy_peer=tests.toy_suite:PeerClaimSuite")

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.fixture
def harness_env(tmp_path, monkeypatch):
    """A private working dir with its own results/ and sqlite store; toy suites registered."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PAPERCLUB_EXTRA_SUITES", TOY)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("PAPERCLUB_PROGRESS", "0")
    monkeypatch.setenv("PAPERCLUB_PUBLISH_RETRIES", "1")  # a store the test breaks on purpose stays broken
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    return tmp_path
