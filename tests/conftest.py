"""Shared fixtures: an injected clock and the emulator; the CI check that tests use the installed package."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from support import FakeClock


def pytest_configure(config):
    # CI installs the package into a fresh venv: prove the tests exercise that install,
    # not the source folder next to them.
    if os.environ.get("CI") == "true":
        import plugin

        checkout = Path(__file__).resolve().parent.parent
        assert checkout not in Path(plugin.__file__).resolve().parents, f"tests import {plugin.__file__}, not the installed package"



@pytest.fixture(autouse=True, scope="session")
def private_state_dir(tmp_path_factory):
    """Quota and cache files go to a temporary folder, for this process and the CLIs it starts."""
    os.environ["DEFENDER_IP_STATE_DIR"] = str(tmp_path_factory.mktemp("state"))
    yield


@pytest.fixture(autouse=True)
def fresh_process_state():
    """Each test starts like a new process: no shared session, token or in-memory budget."""
    from plugin.shared import forget_all

    forget_all()
    yield
    forget_all()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
