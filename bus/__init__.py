"""The hpcrl message bus: message schema, broker daemon and client library (imports no other hpcrl package)."""
