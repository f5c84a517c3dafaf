"""Derived artefacts of a run."""
