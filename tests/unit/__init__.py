"""Unit tests: no servers, no ffmpeg, no database."""
