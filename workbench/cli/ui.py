"""`launch.py ui [--port N] [--listen] [--auth USER:PASS | --auth-file FILE]
[--ssl-certfile FILE --ssl-keyfile FILE] [--home DIR]`: the web app.
Also `python -m workbench.ui`, which forwards here."""

from __future__ import annotations

import sys


def register(subparsers) -> None:
    from workbench.ui.server import AUTH_ENV, DEFAULT_PORT
    parser = subparsers.add_parser("ui", help="start the web app (the default command)")
    parser.add_argument("--port", type=int, default=None,
                        help=f"port to serve on (default {DEFAULT_PORT})")
    parser.add_argument("--listen", action="store_true",
                        help="serve on all network interfaces (needs a login: --auth-file, "
                             f"{AUTH_ENV} or --auth)")
    parser.add_argument("--auth", default=None, metavar="USER:PASS",
                        help="require this login (visible in the process list: prefer "
                             f"--auth-file or {AUTH_ENV}=USER:PASS)")
    parser.add_argument("--auth-file", default=None, metavar="FILE",
                        help="require the login written in FILE as one USER:PASS line "
                             "(chmod 600 it)")
    parser.add_argument("--ssl-certfile", default=None, metavar="FILE",
                        help="serve HTTPS with this certificate (PEM; needs --ssl-keyfile)")
    parser.add_argument("--ssl-keyfile", default=None, metavar="FILE",
                        help="the certificate's private key (PEM; needs --ssl-certfile)")
    parser.add_argument("--home", default=None, metavar="DIR",
                        help="WORKBENCH_HOME: where runs, presets and caches live")
    parser.set_defaults(func=cmd_ui)


def cmd_ui(args) -> int:
    """Exit 2 with one `error:` line on a bad option; 0 after Ctrl+C or SIGTERM."""
    from workbench.ui.server import LaunchError, serve
    try:
        serve(args.port, args.listen, args.auth, args.home, auth_file=args.auth_file,
              ssl_certfile=args.ssl_certfile, ssl_keyfile=args.ssl_keyfile)
    except LaunchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
