"""The API description: GET /openapi.json."""

from __future__ import annotations

from chalice import Blueprint

bp = Blueprint(__name__)
