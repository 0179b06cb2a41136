"""Ballast reports."""
