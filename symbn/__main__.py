"""``python -m symbn``: the ``symbn`` command."""

import sys

from symbn.cli import main

if __name__ == "__main__":
    sys.exit(main())
