"""Flux, for the side-by-side bench: its controllers built from Go modules, and its objects."""
