import sys

from pyprocd.cli import main

sys.exit(main())
