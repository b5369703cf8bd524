"""Study test fixtures: the bright-spot model stub (no Qt)."""

from __future__ import annotations

import pytest

from tests.helpers import make_stub_model


@pytest.fixture(scope="session")
def stub_model():
    return make_stub_model()
