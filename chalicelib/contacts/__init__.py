"""Contacts as the flow engine sees them, and the condition language evaluated over them (pure)."""
