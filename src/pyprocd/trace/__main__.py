import sys

from pyprocd.trace.cli import main

sys.exit(main(sys.argv[1:]))
