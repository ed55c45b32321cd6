"""Placeholder: the fake fal server fixtures go here."""
