"""The Gradio app (issue 3). Importing this package is cheap: gradio, torch and the rest
load only when the app starts, so `launch.py --help` and the CLI stay fast.

    python launch.py                      # the app at http://127.0.0.1:7860
    python launch.py ui --port 8080 --listen --auth ada:s3cret --home ~/wb
"""

from __future__ import annotations


def run_app(host: str = "127.0.0.1", port: int = 7860, auth=None, home: str | None = None,
            **kwargs):
    """Serve the app (blocks until Ctrl+C unless block=False)."""
    from workbench.ui import server
    return server.run_app(host, port, auth, home, **kwargs)
