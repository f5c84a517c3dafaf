"""`python -m workbench.ui [--port N] [--listen] [--auth USER:PASS] [--home DIR]`: the same
as `launch.py ui` (the options live in workbench/cli/ui.py)."""

import sys

from workbench.cli import main

sys.exit(main(["ui", *sys.argv[1:]]))
