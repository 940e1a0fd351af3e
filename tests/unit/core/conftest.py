from __future__ import annotations

import pytest

from ._helpers import DIRECTIONS


@pytest.fixture(params=DIRECTIONS, ids=lambda d: d.value)
def direction(request):
    """Every flow runs for incoming and outgoing conversations (like wsproto's client/server)."""
    return request.param
