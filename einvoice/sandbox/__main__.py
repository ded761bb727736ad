"""``python -m einvoice.sandbox --port N [flags]``: the ``serve`` command without its name."""

import typer

from einvoice.sandbox.cli import serve_command

if __name__ == "__main__":
    typer.run(serve_command)
