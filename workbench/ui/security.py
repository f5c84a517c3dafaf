"""What the web server adds to Gradio at its front door (ui/server.py installs it):

- `FileHeaders`: every file Gradio serves (`/gradio_api/file=...`) gets
  `X-Content-Type-Options: nosniff` and a `Content-Security-Policy` sandbox, and anything
  but an image, audio, video, plain text or JSON is sent as an attachment of type
  application/octet-stream. An uploaded .html, .svg or .js is then a download, never a
  page running script on the app's origin. (Gradio itself serves files in `allowed_paths`
  inline with their guessed type; the server no longer lists WORKBENCH_HOME there, and this
  holds whatever a later Gradio does.)
- `LoginGuard` with `LoginThrottle`: failed logins are counted per client address; after
  MAX_FAILURES within WINDOW_S the client is refused (HTTP 429, with Retry-After) for
  LOCKOUT_S, doubling at each further lock-out up to MAX_LOCKOUT_S; a lock-out expires,
  and a successful login clears the count. Behind a reverse proxy every client has the
  proxy's address: the proxy should throttle too.
- `login_checker`: the password compared in constant time (hmac.compare_digest).
"""

from __future__ import annotations

import hmac
import json
import threading
import time

MAX_FAILURES = 5
WINDOW_S = 60.0
LOCKOUT_S = 60.0
MAX_LOCKOUT_S = 900.0
MAX_CLIENTS = 10_000  # clients remembered at most (a flood of addresses cannot grow it)

# served inline, as Gradio does, but never sniffed into something else
INLINE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp", "text/plain",
                "application/json")
INLINE_PREFIXES = ("audio/", "video/")


def login_checker(user: str, password: str):
    """Gradio's `auth` callable: True for exactly this user and password."""
    want_user, want_password = _bytes(user), _bytes(password)

    def check(username: str, given: str) -> bool:
        user_ok = hmac.compare_digest(_bytes(username), want_user)
        password_ok = hmac.compare_digest(_bytes(given), want_password)
        return user_ok and password_ok
    return check


def _bytes(text) -> bytes:
    return str(text).encode("utf-8", errors="surrogatepass")


class LoginThrottle:
    """Failed logins per client; `wait(client)` says how long it is refused (0: not)."""

    def __init__(self, max_failures: int = MAX_FAILURES, window: float = WINDOW_S,
                 lockout: float = LOCKOUT_S, max_lockout: float = MAX_LOCKOUT_S,
                 clock=time.monotonic):
        self.max_failures, self.window = max_failures, window
        self.lockout, self.max_lockout, self.clock = lockout, max_lockout, clock
        self._clients: dict[str, dict] = {}
        self._lock = threading.Lock()

    def wait(self, client: str) -> float:
        with self._lock:
            state = self._clients.get(client)
            if state is None:
                return 0.0
            return max(0.0, state["until"] - self.clock())

    def failed(self, client: str) -> None:
        now = self.clock()
        with self._lock:
            if len(self._clients) >= MAX_CLIENTS and client not in self._clients:
                self._forget_quiet(now)
            state = self._clients.setdefault(client, {"times": [], "until": 0.0,
                                                      "strikes": 0})
            state["times"] = [t for t in state["times"] if now - t < self.window] + [now]
            if len(state["times"]) >= self.max_failures:
                state["strikes"] += 1
                state["until"] = now + min(self.lockout * 2 ** (state["strikes"] - 1),
                                           self.max_lockout)
                state["times"] = []  # after the lock-out, a fresh count

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._clients.pop(client, None)

    def _forget_quiet(self, now: float) -> None:
        """Drop clients with no recent failure and no lock-out (the oldest half when every
        one is recent)."""
        quiet = [c for c, s in self._clients.items() if s["until"] <= now and
                 all(now - t >= self.window for t in s["times"])]
        if not quiet:
            quiet = list(self._clients)[: len(self._clients) // 2]
        for c in quiet:
            del self._clients[c]


def _is_login(scope) -> bool:
    path = scope.get("path", "")
    return scope.get("method") == "POST" and (path.endswith("/login") or
                                              path.endswith("/login/"))


class LoginGuard:
    """ASGI middleware: refuses a throttled client's login before Gradio sees it and
    reports each login's outcome to the throttle."""

    def __init__(self, app, throttle: LoginThrottle | None = None):
        self.app = app
        self.throttle = throttle or LoginThrottle()

    async def __call__(self, scope, receive, send):
        if scope.get("type") != "http" or not _is_login(scope):
            await self.app(scope, receive, send)
            return
        client = (scope.get("client") or ("?",))[0]
        wait = self.throttle.wait(client)
        if wait > 0:
            await _refuse(send, wait)
            return

        async def watch(message):
            if message["type"] == "http.response.start":
                if message["status"] < 300:
                    self.throttle.succeeded(client)
                elif message["status"] >= 400:
                    self.throttle.failed(client)
            await send(message)
        await self.app(scope, receive, watch)


async def _refuse(send, wait: float) -> None:
    seconds = int(wait) + 1
    body = json.dumps({"detail": f"too many failed logins from this address; try again in "
                                 f"{seconds} s"}).encode()
    await send({"type": "http.response.start", "status": 429,
                "headers": [(b"content-type", b"application/json"),
                            (b"retry-after", str(seconds).encode()),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def _is_file_route(scope) -> bool:
    path = scope.get("path", "")
    return "/file=" in path or "/file/" in path


class FileHeaders:
    """ASGI middleware: files Gradio serves are never rendered as a page (module doc)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope.get("type") != "http" or not _is_file_route(scope):
            await self.app(scope, receive, send)
            return

        async def harden(message):
            if message["type"] == "http.response.start":
                message = dict(message, headers=safe_file_headers(message.get("headers",
                                                                              [])))
            await send(message)
        await self.app(scope, receive, harden)


def safe_file_headers(headers) -> list[tuple[bytes, bytes]]:
    """A file response's headers, made inert (see FileHeaders)."""
    out, ctype, disposition = [], b"", b""
    for name, value in headers:
        low = name.lower()
        if low == b"content-type":
            ctype = value
        elif low == b"content-disposition":
            disposition = value
        if low in (b"x-content-type-options", b"content-security-policy"):
            continue
        out.append((name, value))
    mime = ctype.split(b";")[0].strip().lower().decode("latin-1")
    if not (mime in INLINE_TYPES or mime.startswith(INLINE_PREFIXES)):
        # keep the file name Gradio gave (inline; filename="x.html" -> attachment; ...)
        params = disposition.partition(b";")[2]
        out = [(n, v) for n, v in out if n.lower() not in (b"content-type",
                                                           b"content-disposition")]
        out += [(b"content-type", b"application/octet-stream"),
                (b"content-disposition", b"attachment" + (b";" + params if params else b""))]
    out += [(b"x-content-type-options", b"nosniff"),
            (b"content-security-policy", b"default-src 'none'; sandbox")]
    return out
