"""`launch.py ui [--port N] [--listen] [--auth USER:PASS] [--home DIR]`: the web app.
Also `python -m workbench.ui`, which forwards here."""

from __future__ import annotations

import sys


def register(subparsers) -> None:
    from workbench.ui.server import AUTH_ENV, DEFAULT_PORT
    parser = subparsers.add_parser("ui", help="start the web app (the default command)")
    parser.add_argument("--port", type=int, default=None,
                        help=f"port to serve on (default {DEFAULT_PORT})")
    parser.add_argument("--listen", action="store_true",
                        help="serve on all network interfaces (needs --auth or "
                             f"{AUTH_ENV})")
    parser.add_argument("--auth", default=None, metavar="USER:PASS",
                        help=f"require this login (or set {AUTH_ENV}=USER:PASS)")
    parser.add_argument("--home", default=None, metavar="DIR",
                        help="WORKBENCH_HOME: where runs, presets and caches live")
    parser.set_defaults(func=cmd_ui)


def cmd_ui(args) -> int:
    """Exit 2 with one `error:` line on a bad option."""
    from workbench.ui.server import LaunchError, serve
    try:
        serve(args.port, args.listen, args.auth, args.home)
    except LaunchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
