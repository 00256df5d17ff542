"""``python -m denet``: the denet command line (see :mod:`denet.cli`)."""

import sys

from denet.cli import main

if __name__ == "__main__":
    sys.exit(main())
