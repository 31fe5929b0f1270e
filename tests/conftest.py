"""Shared test helpers: the example flow documents."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "docs" / "examples"


def fake_aws_env(region: str) -> dict[str, str]:
    """Credentials and a region that only moto accepts."""
    return {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": region,
    }


def example(name: str) -> dict[str, Any]:
    return copy.deepcopy(json.loads((EXAMPLES / f"{name}.json").read_text()))


@pytest.fixture
def welcome_doc() -> dict[str, Any]:
    return example("welcome")
