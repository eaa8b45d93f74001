"""``python -m rtoc.frontends.automation --instance NAME --folder PATH``."""

import sys

from rtoc.frontends.automation.host import cli

if __name__ == "__main__":
    sys.exit(cli())
