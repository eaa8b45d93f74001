"""``python -m rtoc`` is the ``rtoc`` command."""

import sys

from rtoc.cli import main

if __name__ == "__main__":
    sys.exit(main())
