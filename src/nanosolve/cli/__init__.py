"""The ``nanosolve`` command line (typer)."""
