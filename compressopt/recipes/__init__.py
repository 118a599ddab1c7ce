"""Recipes: named presets of ``compressopt compress`` (TOML files; ``--recipe NAME``)."""
