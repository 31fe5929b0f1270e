"""The base of every pydantic model in Floe: its validator and schema are built on first use.

Building them at import would add a third to the app's cold start, for schemas most requests never
touch (an API function validates a few bodies; a worker none of the routes' answers).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Model(BaseModel):
    model_config = ConfigDict(defer_build=True)
