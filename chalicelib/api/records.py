"""Marketer routes for a contact's records: erasure, export, timeline, and CRM objects (activities, sales, requests)."""

from __future__ import annotations

from chalice import Blueprint

bp = Blueprint(__name__)
