"""Marketer routes for message templates (flow content)."""

from __future__ import annotations

from chalice import Blueprint

bp = Blueprint(__name__)
