"""``python -m nanosolve``: the same command line as ``nanosolve``."""

from nanosolve.cli.main import app

if __name__ == "__main__":
    app(prog_name="nanosolve")
