#!/usr/bin/env python
"""Workbench entry point: the app by default, subcommands for headless work.

    python launch.py                 # the app at http://127.0.0.1:7860
    python launch.py --help          # every command
    python launch.py train cpu-demo  # train a preset headless
"""

import sys

from workbench.cli import main

if __name__ == "__main__":
    sys.exit(main())
