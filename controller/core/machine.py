"""Compatibility: the conversation machine now lives in :mod:`controller.core.conversation`.

The theory of operation is the docstring of :mod:`controller.core.conversation`.
"""

from __future__ import annotations

from .conversation import SCHEMA_VERSION, Conversation
from .legs import Leg
from .transfer import Transfer

__all__ = ["SCHEMA_VERSION", "Conversation", "Leg", "Transfer"]
