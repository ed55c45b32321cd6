"""Generators: the interface every generator implements, the preview and fal ones, the clip cache."""
