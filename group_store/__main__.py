"""``python -m group_store`` and the ``group-store`` script: the command line."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    """Run the command line; it needs the ``cli`` extra (click)."""
    try:
        from .cli import cli
    except ModuleNotFoundError as exc:
        if exc.name != "click":
            raise
        print("group-store: error: the command line needs click: pip install 'group-store[cli]'", file=sys.stderr)
        raise SystemExit(2) from None
    cli.main(args=argv, prog_name="group-store")


if __name__ == "__main__":
    main()
