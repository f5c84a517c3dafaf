"""EarlyScript puts the frame script first in every HTML page and leaves the rest alone."""

import asyncio

from workbench.ui.frames import FRAME_SCRIPT, EarlyScript, with_script


def _serve(middleware_app, method="GET"):
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)
    asyncio.run(middleware_app({"type": "http", "method": method, "path": "/"}, receive,
                               send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return dict(start["headers"]), body, len(sent)


def _app(content_type: bytes, parts: list[bytes], extra=()):
    async def app(scope, receive, send):
        length = str(sum(map(len, parts))).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", content_type),
                                (b"content-length", length), *extra]})
        for i, part in enumerate(parts):
            await send({"type": "http.response.body", "body": part,
                        "more_body": i < len(parts) - 1})
    return app


def test_html_gets_the_script_first_in_head_with_its_length():
    page = [b"<!doctype html><html><HEAD lang='x'><meta charset=utf-8>",
            b"<script type=module src=index.js></script></head><body></body></html>"]
    headers, body, _ = _serve(EarlyScript(_app(b"text/html; charset=utf-8", page)))
    script = FRAME_SCRIPT.encode()
    assert body.startswith(b"<!doctype html><html><HEAD lang='x'>" + script + b"<meta")
    assert body.index(script) < body.index(b"type=module")
    assert body.count(script) == 1
    assert headers[b"content-length"] == str(len(body)).encode()


def test_other_responses_pass_untouched():
    js = [b"console.log('<head>')"]
    headers, body, n = _serve(EarlyScript(_app(b"text/javascript", js)))
    assert body == js[0] and headers[b"content-length"] == str(len(js[0])).encode()
    # compressed HTML is not rewritten (its bytes are not the page's text)
    gz = [b"\x1f\x8b<head>"]
    headers, body, _ = _serve(EarlyScript(_app(b"text/html", gz,
                                               [(b"content-encoding", b"gzip")])))
    assert body == gz[0]
    headers, body, _ = _serve(EarlyScript(_app(b"text/html", [b"<head></head>"])), "POST")
    assert body == b"<head></head>"


def test_with_script_without_a_head_leaves_the_page():
    assert with_script(b"<p>hi</p>", b"<script></script>") == b"<p>hi</p>"
    assert with_script(b"<head>x", b"S") == b"<head>Sx"
