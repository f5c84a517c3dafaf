"""`python -m workbench.ui [--port N] [--listen] [--auth USER:PASS] [--home DIR]`."""

import argparse
import sys

from workbench.ui import server

parser = argparse.ArgumentParser(prog="python -m workbench.ui", description="Workbench app")
server.add_arguments(parser)
sys.exit(server.cli_main(parser.parse_args()))
