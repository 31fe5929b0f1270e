"""Marketer routes for saved segments: CRUD, members and counts."""

from __future__ import annotations

from chalice import Blueprint

bp = Blueprint(__name__)
