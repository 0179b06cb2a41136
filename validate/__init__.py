"""Ballast validate."""
