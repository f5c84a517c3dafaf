"""A page script that keeps long animation loops from costing a core (issue 9, item 3).

Gradio 6.31's page keeps a `requestAnimationFrame` loop running at the screen's rate (60
a second) from the moment it loads, for good: a status tracker's elapsed-time counter
(statustracker-*.js, `ze`) that started while the page loaded and is never stopped. An
empty `gr.Blocks()` page has it too. Nothing on screen changes, but each frame runs script
and asks the compositor for a frame: in headless Chromium (software rendering, 2-core AVX2
machine) the idle page cost 8-10% of a core, which a training run on the same machine
loses (bench/README.md, "The app's own cost").

FRAME_SCRIPT wraps `requestAnimationFrame`/`cancelAnimationFrame`: a frame
asked for from inside a frame callback continues that callback's loop; once a loop has run
for LOOP_MS, its further frames come at most every SLOW_MS (once a second). Short
animations (a tab's fade, a plot's transition, a scroll) run at full rate; a counter that
runs on ticks once a second. Measured (bench/app_idle.py, AVX2): the idle Dataset tab cost
Chromium 10.3% of a core before, 4.9% at 10 frames a second, 2.8% at 4; with the Training
tab following a run (--fake-run), 3.6-3.9% at 4 frames a second and 3.0% at 1 (191-207 and
103-148 wake-ups a second).

The script has to run before Gradio's modules, which keep their own reference to
`requestAnimationFrame` when they load; Gradio adds `head=` content only after that. So
`EarlyScript`, an ASGI middleware (ui/server.py installs it), puts it right after `<head>`
of every HTML page the server sends.
"""

from __future__ import annotations

LOOP_MS = 3000
SLOW_MS = 1000

FRAME_SCRIPT = """<script>
(() => {
  if (window.__wbFrames) return;
  const native = window.requestAnimationFrame.bind(window);
  const cancelNative = window.cancelAnimationFrame.bind(window);
  const LOOP_MS = %(loop)d, SLOW_MS = %(slow)d;
  const pending = new Map();  // our id -> {raf, timer}
  let nextId = 1, running = null;  // running: the loop whose frame callback runs now
  window.requestAnimationFrame = (callback) => {
    const loop = running || {since: performance.now()};
    const id = nextId++, entry = {raf: null, timer: null};
    const frame = (time) => {
      pending.delete(id);
      const outer = running;
      running = loop;
      try { callback(time); } finally { running = outer; }
    };
    if (performance.now() - loop.since < LOOP_MS) {
      entry.raf = native(frame);
    } else {
      entry.timer = setTimeout(() => { entry.timer = null; entry.raf = native(frame); }, SLOW_MS);
    }
    pending.set(id, entry);
    return id;
  };
  window.cancelAnimationFrame = (id) => {
    const entry = pending.get(id);
    if (!entry) return;
    pending.delete(id);
    if (entry.timer !== null) clearTimeout(entry.timer);
    if (entry.raf !== null) cancelNative(entry.raf);
  };
  window.__wbFrames = {LOOP_MS, SLOW_MS};
})();
</script>
""" % {"loop": LOOP_MS, "slow": SLOW_MS}


class EarlyScript:
    """ASGI middleware: FRAME_SCRIPT first in the <head> of every HTML response (see the
    module doc). Other responses pass through untouched and unbuffered."""

    def __init__(self, app, script: str = FRAME_SCRIPT):
        self.app = app
        self.script = script.encode("utf-8")

    async def __call__(self, scope, receive, send):
        if scope.get("type") != "http" or scope.get("method") != "GET":
            await self.app(scope, receive, send)
            return
        held: dict = {}  # the HTML response's start message, then its body parts

        async def inject(message):
            if message["type"] == "http.response.start":
                headers = {k.lower(): v for k, v in message.get("headers", [])}
                html = headers.get(b"content-type", b"").startswith(b"text/html")
                if html and b"content-encoding" not in headers:
                    held["start"], held["body"] = message, []
                    return
            if "start" not in held or message["type"] != "http.response.body":
                await send(message)
                return
            held["body"].append(message.get("body", b""))
            if message.get("more_body"):
                return
            body = with_script(b"".join(held["body"]), self.script)
            start = held["start"]
            headers = [(k, v) for k, v in start.get("headers", [])
                       if k.lower() != b"content-length"]
            headers.append((b"content-length", str(len(body)).encode()))
            await send(dict(start, headers=headers))
            await send({"type": "http.response.body", "body": body})
        await self.app(scope, receive, inject)


def with_script(html: bytes, script: bytes) -> bytes:
    """`script` right after the first <head ...> tag; a page without one is left as is."""
    at = html.lower().find(b"<head")
    end = html.find(b">", at) if at >= 0 else -1
    return html if end < 0 else html[:end + 1] + script + html[end + 1:]
