"""The use cases: flow lifecycle, enrollment, step handling, engagement."""
