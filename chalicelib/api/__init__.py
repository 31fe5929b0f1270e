"""Chalice blueprints: parse the request, call one use case, shape the answer."""
