"""`python -m n4afs.cli ARGS...`: the `n4afs` command."""

import sys

from n4afs.cli import main

main(sys.argv[1:])
