"""The ``fleet`` command line."""
