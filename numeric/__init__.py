"""Ballast numeric."""
