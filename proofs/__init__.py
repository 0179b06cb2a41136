"""Ballast proofs."""
