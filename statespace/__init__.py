"""Ballast statespace."""
