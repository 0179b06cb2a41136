"""Differential testing of an implementation through an adapter process speaking the
JSON-lines protocol."""
