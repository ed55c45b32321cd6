"""Placeholder: the local S3 server fixtures go here."""
