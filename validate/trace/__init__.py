"""Validation of an implementation's trace in the project's format against the model."""
