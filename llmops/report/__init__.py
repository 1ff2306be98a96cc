"""Renderers of results: one module per output format."""
