"""The flow language: the document model, its validation and its compiler to Amazon States Language (pure)."""
