"""The ``rtoc`` command's entry point (also ``python -m rtoc``).

It imports nothing heavy itself: a Ctrl-C that arrives while the rest is still importing
ends the command quietly (status 130) instead of with a ``KeyboardInterrupt`` traceback.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    try:
        from rtoc.app.cli import main as cli_main

        return cli_main(argv)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
