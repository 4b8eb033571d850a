"""`python3 -m pyprocd.trace ...`, or this file run by path, as the daemon does
(`python3 -I .../pyprocd/trace/__main__.py`): isolated from the instance's PYTHON*
variables, it finds its package from its own place."""

import os
import sys

if not __package__:
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from pyprocd.trace.cli import main  # after the path is set

sys.exit(main(sys.argv[1:]))
