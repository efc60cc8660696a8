"""Helpers shared by test suites (importable as `support`)."""
