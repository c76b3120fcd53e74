"""The ``comfyx`` command line."""
