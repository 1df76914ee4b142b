"""The hub: one process, one anyio task group, keeping every app on every cluster in sync."""
