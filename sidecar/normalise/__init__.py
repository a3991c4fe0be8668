"""Normalisation: turn a validated /check request into canonical subjects (CONTRACT 2.2)."""
