"""Planners that need no model: the deterministic intent reader."""
