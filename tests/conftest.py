"""Shared test helpers: the example flow documents."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "docs" / "examples"


def example(name: str) -> dict[str, Any]:
    return copy.deepcopy(json.loads((EXAMPLES / f"{name}.json").read_text()))


@pytest.fixture
def welcome_doc() -> dict[str, Any]:
    return example("welcome")
