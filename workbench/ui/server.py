"""Starting the app safely: `python launch.py ui [--port N] [--listen] [--auth USER:PASS |
--auth-file FILE] [--ssl-certfile FILE --ssl-keyfile FILE] [--home DIR]` (also
`python launch.py` alone, or `python -m workbench.ui`).

Safe by default: binds 127.0.0.1; `--listen` (all interfaces) is refused unless a login is
set (`--auth-file`, WORKBENCH_AUTH=user:pass, or `--auth`, which shows the password in the
process list and says so); HTTPS with `--ssl-certfile/--ssl-keyfile`; never a public share
link; uploads capped at MAX_UPLOAD; analytics, flagging, run history and monitoring off.
The server serves no folder of WORKBENCH_HOME (`allowed_paths` is empty): only its own
assets and Gradio's uploads, which `security.FileHeaders` sends as inert attachments;
failed logins are throttled per client (`security.LoginGuard`). SIGTERM stops it as
Ctrl+C does (exit code 0); a training job keeps running, and the next start reattaches.
"""

from __future__ import annotations

import contextlib
import os
import signal
import stat
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
                    env: dict | None = None, *, auth_file: str | None = None
                    ) -> tuple[str, int, tuple[str, str] | None]:
    """(host, port, auth) from the command line and the environment, or LaunchError.
    The login comes from --auth, --auth-file or WORKBENCH_AUTH, in that order."""
    env = os.environ if env is None else env
    if auth is not None and auth_file is not None:
        raise LaunchError("give the login once: --auth or --auth-file, not both")
    if auth_file is not None:
        creds = read_auth_file(auth_file)
    else:
        creds = parse_auth(auth if auth is not None else env.get(AUTH_ENV))
    if listen and creds is None:
        raise LaunchError("--listen makes the app reachable from other machines; it needs a "
                          "login: add --auth-file FILE (a USER:PASS line), set "
                          f"{AUTH_ENV}=USER:PASS or add --auth USER:PASS")
    port = DEFAULT_PORT if port is None else int(port)
    if not 1 <= port <= 65535:
        raise LaunchError(f"--port {port}: choose a port between 1 and 65535")
    return ("0.0.0.0" if listen else DEFAULT_HOST), port, creds


def read_auth_file(name: str) -> tuple[str, str]:
    """USER:PASS from the first non-blank line of a file (kept out of the process list).
    A file others can read is used, with a warning: it shows the password as --auth does."""
    from workbench import paths
    from workbench.errors import path_text
    try:
        path = paths.expand(name, LaunchError)
        with paths.open_regular(path, name, LaunchError, max_bytes=4096,
                                what="login file") as fh:
            mode = os.fstat(fh.fileno()).st_mode
            text = fh.read().decode("utf-8")
    except UnicodeDecodeError:
        raise LaunchError(f"--auth-file {path_text(name)}: not UTF-8 text") from None
    except LaunchError as exc:
        raise LaunchError(f"--auth-file {exc}") from None
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    try:
        creds = parse_auth(line)
    except LaunchError:
        creds = None
    if creds is None:
        raise LaunchError(f"--auth-file {path_text(name)}: write one line USER:PASS (both "
                          "non-empty) in it")
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        print(f"warning: {path_text(name)} can be read by other users of this machine; "
              f"`chmod 600 {path_text(name)}` keeps the password yours", file=sys.stderr,
              flush=True)
    return creds


def resolve_tls(certfile: str | None, keyfile: str | None) -> dict:
    """Gradio's ssl_* options for HTTPS: both files or neither (LaunchError naming the
    missing or unreadable one)."""
    if certfile is None and keyfile is None:
        return {}
    if certfile is None or keyfile is None:
        given, missing = (("--ssl-keyfile", "--ssl-certfile") if certfile is None
                          else ("--ssl-certfile", "--ssl-keyfile"))
        raise LaunchError(f"{given} needs {missing} too: HTTPS takes the certificate and "
                          "its private key")
    from workbench import paths
    out = {}
    for option, name in (("--ssl-certfile", certfile), ("--ssl-keyfile", keyfile)):
        try:
            path = paths.expand(name, LaunchError)
            with paths.open_regular(path, name, LaunchError, max_bytes=1 << 20,
                                    what="certificate or key file"):
                pass
        except LaunchError as exc:
            raise LaunchError(f"{option} {exc}") from None
        out[option[2:].replace("-", "_")] = str(path.resolve())
    # Gradio checks its own start-up over HTTPS on localhost; a certificate made for the
    # machine's name (or self-signed) would fail that check, never a browser's
    out["ssl_verify"] = False
    return out


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


def launch_kwargs(host: str, port: int, auth, home: str, tls: dict | None = None) -> dict:
    from starlette.middleware import Middleware

    from workbench.ui import security
    from workbench.ui.app import CSS
    from workbench.ui.frames import EarlyScript
    from workbench.ui.i18n import i18n, page_head
    from workbench.ui.tabs.training import POLL_SCRIPT
    from workbench.ui.widgets import NUMBER_SCRIPT
    check = security.login_checker(*auth) if auth else None
    # nothing of WORKBENCH_HOME (`home`) is served: a file in allowed_paths goes out inline
    # with its own type, so an uploaded .html would be a page on this origin
    return dict(server_name=host, server_port=port, auth=check, share=False,
                max_file_size=MAX_UPLOAD, allowed_paths=[], quiet=True,
                show_error=False, enable_monitoring=False, run_history=False,
                mcp_server=False, ssr_mode=False, footer_links=["api", "settings"],
                i18n=i18n(), css=CSS, head=page_head() + NUMBER_SCRIPT + POLL_SCRIPT,
                auth_message="Workbench",
                app_kwargs={"middleware": [Middleware(EarlyScript),
                                           Middleware(security.FileHeaders),
                                           Middleware(security.LoginGuard)]},
                **(tls or {}))


def run_app(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, auth=None,
            home: str | None = None, *, block: bool = True, tls: dict | None = None):
    """Build and serve the app; print its URL. block=False returns (demo, url) for tests.
    Blocking, it serves until Ctrl+C or SIGTERM, then shuts down cleanly."""
    root = prepare_environment(home)
    os.environ["WORKBENCH_UI_HOST"] = host  # the page shows real paths only to this computer
    from workbench import runs
    from workbench.runs import jobs
    runs.clean_stale_temps()  # what writers killed while the app was down left behind
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
                                                                          root, tls))
    except OSError:
        raise LaunchError(f"port {port} on {host} is in use (another app, or Workbench "
                          f"already running?); choose another with --port {port + 1}") from None
    calm_queue(demo)
    # transformers loads in the background once the page is up (see widgets.guard)
    from workbench.ui import widgets
    threading.Thread(target=widgets.warm_heavy_imports, daemon=True).start()
    scheme = "https" if tls else "http"
    shown = url if host != "0.0.0.0" else f"{scheme}://<this machine's address>:{port}/"
    print(f"Workbench is running at {shown}  (Ctrl+C to stop)", flush=True)
    if host == "0.0.0.0" and not tls:
        print("note: without --ssl-certfile/--ssl-keyfile the login crosses the network "
              "unencrypted", flush=True)
    if not block:
        return demo, url
    try:
        wait_for_stop(demo)
    finally:
        jobs.stop_attached()  # a merge or export the page started; training keeps running
        demo.close()
    print("Workbench stopped", flush=True)
    return demo, url


QUEUE_IDLE_SLEEP = 0.05  # s between looks at an empty event queue (Gradio: 0.001)
PROGRESS_IDLE_SLEEP = 0.1  # s between looks for progress to send (Gradio: 0.01)


def calm_queue(demo) -> None:
    """Gradio's queue looks for new events every 1 ms and for progress every 10 ms while
    nothing happens (its own values on Windows are 50 and 100 ms): about 8% of a core
    spent on an idle app, all the time, which a 2-core machine's training run feels
    (bench/README.md, "The app's own cost"). Use the Windows values: an event waits at
    most 50 ms more to start. No public setting exists (Gradio 6); a Gradio without these
    attributes is left as it is."""
    queue = getattr(demo, "_queue", None)
    for name, value in (("sleep_when_free", QUEUE_IDLE_SLEEP),
                        ("progress_update_sleep_when_free", PROGRESS_IDLE_SLEEP)):
        if queue is not None and isinstance(getattr(queue, name, None), (int, float)):
            setattr(queue, name, max(getattr(queue, name), value))


def wait_for_stop(demo) -> None:
    """Block until Ctrl+C (SIGINT) or SIGTERM (a service manager, `docker stop`): both end
    in the same clean shutdown."""
    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stop.wait(0.5) and getattr(demo, "is_running", True):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def serve(port, listen, auth, home, *, auth_file=None, ssl_certfile=None,
          ssl_keyfile=None) -> None:
    """What the `ui` command runs: options checked (LaunchError names the bad one), then
    the app until Ctrl+C or SIGTERM."""
    if auth:
        print(f"note: --auth shows the password to every user of this machine (the process "
              f"list); --auth-file FILE or {AUTH_ENV} keep it out", file=sys.stderr, flush=True)
    host, port, auth = resolve_options(port, listen, auth, auth_file=auth_file)
    tls = resolve_tls(ssl_certfile, ssl_keyfile)
    run_app(host, port, auth, home, tls=tls)
    # The server and the page's children are closed now. Python's own teardown of torch,
    # transformers and gradio would take another 2-5 s of a busy machine (service
    # managers and `docker stop` allow 5-10 s before they kill), so end here, exit code 0.
    import logging
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
