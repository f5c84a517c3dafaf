"""Starting the app safely: `python launch.py ui [--port N] [--listen] [--auth USER:PASS]
[--home DIR]` (also `python launch.py` alone, or `python -m workbench.ui`).

Safe by default: binds 127.0.0.1; `--listen` (all interfaces) is refused unless a login is
set (`--auth` or WORKBENCH_AUTH=user:pass); never a public share link; uploads capped at
MAX_UPLOAD; analytics, flagging, run history and monitoring off; the server serves files
only from WORKBENCH_HOME (where Gradio's own temp files go too) and its own assets.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
MAX_UPLOAD = "512mb"
AUTH_ENV = "WORKBENCH_AUTH"


class LaunchError(Exception):
    """A bad launch option: printed as one `error:` line, exit code 2."""


def parse_auth(text: str | None) -> tuple[str, str] | None:
    if text is None or text == "":
        return None
    user, sep, password = text.partition(":")
    if not sep or not user or not password:
        raise LaunchError("--auth must be USER:PASS (both non-empty), e.g. --auth ada:s3cret")
    return user, password


def resolve_options(port: int | None, listen: bool, auth: str | None,
                    env: dict | None = None) -> tuple[str, int, tuple[str, str] | None]:
    """(host, port, auth) from the command line and the environment, or LaunchError."""
    env = os.environ if env is None else env
    creds = parse_auth(auth if auth is not None else env.get(AUTH_ENV))
    if listen and creds is None:
        raise LaunchError("--listen makes the app reachable from other machines; it needs a "
                          f"login: add --auth USER:PASS or set {AUTH_ENV}=USER:PASS")
    port = DEFAULT_PORT if port is None else int(port)
    if not 1 <= port <= 65535:
        raise LaunchError(f"--port {port}: choose a port between 1 and 65535")
    return ("0.0.0.0" if listen else DEFAULT_HOST), port, creds


def prepare_environment(home: str | None) -> str:
    """Set WORKBENCH_HOME and Gradio's switches before gradio is imported."""
    if home:
        os.environ["WORKBENCH_HOME"] = os.path.abspath(os.path.expanduser(home))
    from workbench import paths
    root = paths.home()
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ["GRADIO_FLAGGING_MODE"] = "never"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ["GRADIO_TEMP_DIR"] = str(root / "cache" / "gradio")
    os.environ.pop("GRADIO_SHARE", None)  # never a public link, whatever the shell says
    os.environ.pop("GRADIO_ALLOWED_PATHS", None)
    skip_gradio_stub_generation()
    return str(root)


@contextlib.contextmanager
def _fastapi_app_built_once():
    """gr.Blocks builds its FastAPI app in __init__ (via queue()) and again in __exit__,
    and launch() builds the one it serves: ~0.4 s of CPU each. While the page is built,
    skip the first two; launch() builds the real one as usual."""
    try:
        from gradio import routes
        original = routes.App.__dict__["create_app"]
    except (ImportError, KeyError):
        yield
        return
    routes.App.create_app = staticmethod(lambda *args, **kwargs: None)
    try:
        yield
    finally:
        routes.App.create_app = original


def skip_gradio_stub_generation() -> None:
    """Gradio (6.31) regenerates the .pyi type stub of every component class, by parsing
    its source, each time it is imported: a development aid that writes into
    site-packages and doubles the import time (about 2 s of CPU here). Replace that
    one function with a no-op as gradio.component_meta loads; harmless if it changes."""
    import importlib.abc
    import importlib.machinery

    if "gradio.component_meta" in sys.modules:
        return

    class _Finder(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name != "gradio.component_meta":
                return None
            sys.meta_path.remove(self)
            spec = importlib.machinery.PathFinder.find_spec(name, path)
            if spec is None or spec.loader is None:
                return spec
            original = spec.loader.exec_module

            def exec_module(module):
                original(module)
                if hasattr(module, "create_or_modify_pyi"):
                    module.create_or_modify_pyi = lambda *args, **kwargs: None
            spec.loader.exec_module = exec_module
            return spec

    if not any(type(f).__name__ == "_Finder" for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder())


def launch_kwargs(host: str, port: int, auth, home: str) -> dict:
    from workbench.ui.app import CSS
    from workbench.ui.i18n import i18n, page_head
    return dict(server_name=host, server_port=port, auth=auth, share=False,
                max_file_size=MAX_UPLOAD, allowed_paths=[home], quiet=True,
                show_error=False, enable_monitoring=False, run_history=False,
                mcp_server=False, ssr_mode=False, footer_links=["api", "settings"],
                i18n=i18n(), css=CSS, head=page_head(), auth_message="Workbench")


def run_app(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, auth=None,
            home: str | None = None, *, block: bool = True):
    """Build and serve the app; print its URL. block=False returns (demo, url) for tests."""
    root = prepare_environment(home)
    from workbench.runs import jobs
    for name in jobs.orphans():  # a job that died while the app was down
        print(f"note: run {name} had stopped without saying so; it shows as failed",
              flush=True)
    from workbench.ui.app import build_app
    with _fastapi_app_built_once():
        demo = build_app()
    # no demo.queue(): the default queue (one at a time per event) is what we want, and
    # each queue() call rebuilds the FastAPI app (~0.5 s of start-up)
    try:
        _, url, _ = demo.launch(prevent_thread_lock=True, **launch_kwargs(host, port, auth,
                                                                          root))
    except OSError:
        raise LaunchError(f"port {port} on {host} is in use (another app, or Workbench "
                          f"already running?); choose another with --port {port + 1}") from None
    # transformers loads in the background once the page is up (see widgets.guard)
    from workbench.ui import widgets
    threading.Thread(target=widgets.warm_heavy_imports, daemon=True).start()
    shown = url if host != "0.0.0.0" else f"http://<this machine's address>:{port}/"
    print(f"Workbench is running at {shown}  (Ctrl+C to stop)", flush=True)
    if not block:
        return demo, url
    try:
        demo.block_thread()
    except KeyboardInterrupt:
        pass
    finally:
        demo.close()
    return demo, url


def serve(port, listen, auth, home) -> None:
    """What the `ui` command runs: options checked (LaunchError names the bad one), then
    the app until Ctrl+C."""
    host, port, auth = resolve_options(port, listen, auth)
    run_app(host, port, auth, home)
