"""One gradio_client round trip against the launched app (in this process, on a free
port), plus what the server refuses to serve."""

import json
import os
import socket
import time
import urllib.error
import urllib.request

import pytest
from gradio_client import Client

from workbench.runs import jobs
from workbench import paths, presets, runs
from workbench.ui import server

from tests.children import fake_children


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def app(_workbench_home):
    saved = dict(os.environ)
    demo, url = server.run_app("127.0.0.1", _free_port(), None, None, block=False)
    try:
        yield demo, url
    finally:
        demo.close()
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture
def app_url(app):
    return app[1]


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_round_trip(app, monkeypatch):
    demo, app_url = app
    assert app_url.startswith("http://127.0.0.1:")
    # the launched app's queue does not spin: Gradio's own 1 ms idle poll is ~8% of a core
    assert demo._queue.sleep_when_free >= server.QUEUE_IDLE_SLEEP
    assert demo._queue.progress_update_sleep_when_free >= server.PROGRESS_IDLE_SLEEP
    client = Client(app_url, verbose=False)
    names = [p["name"] for p in client.predict(api_name="/presets")]
    assert "cpu-demo" in names

    # the Training tab's poll asks this as the page does (training.POLL_SCRIPT)
    from workbench.ui.tabs import training
    ask = urllib.request.Request(f"{app_url}gradio_api/run/{training.LIVE_API}",
                                 data=b'{"data": ["", null]}', method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(ask, timeout=10) as resp:
        answer = json.loads(resp.read())["data"][0]
    assert len(answer["known"]["key"]) == 16 and "progress" in answer["parts"]

    saved = client.predict("mine", "cpu-demo", ["train.max_steps=5"], False,
                           api_name="/save_preset")
    assert saved == {"name": "mine", "kind": "user"}
    assert presets.load("mine").train.max_steps == 5

    with pytest.raises(Exception) as info:  # a readable message, not a traceback
        client.predict("../escape", "cpu-demo", [], False, api_name="/save_preset")
    assert "preset name" in str(info.value) and "Traceback" not in str(info.value)

    assert client.predict("", api_name="/status")["run"] is None

    def fake_start(preset, name):  # a job that "runs" in this process
        run = paths.runs_dir() / f"{name}-20250101-120000"
        run.mkdir(parents=True)
        (run / "preset.yaml").write_text(presets.to_yaml(preset), "utf-8")
        runs.write_status(run, state="running", pid=os.getpid(), step=0, max_steps=3)
        return run
    monkeypatch.setattr(jobs, "start", fake_start)
    st = client.predict("cpu-demo", "smoke", ["train.max_steps=3"], api_name="/start")
    assert st["run"] == "smoke-20250101-120000" and st["state"] == "running"
    assert client.predict(api_name="/runs")[0]["name"] == "smoke-20250101-120000"
    assert client.predict("", api_name="/stop")["stop_requested"] is True
    assert (paths.runs_dir() / "smoke-20250101-120000" / runs.STOP_FILE).exists()


def test_merge_and_compare_endpoints(app_url, monkeypatch):
    from workbench import chat
    from workbench.export import merge

    run = paths.runs_dir() / "done-20250101-120000"
    run.mkdir(parents=True)
    (run / "preset.yaml").write_text(presets.to_yaml(presets.load("cpu-demo")), "utf-8")
    runs.write_status(run, state="completed", pid=os.getpid(), step=3, max_steps=3)

    # the merge runs in a child (launch.py merge, via jobs.spawn): a stand-in child writes
    # the report to its result file; the server itself never merges
    monkeypatch.setattr(merge, "merge", lambda *a, **k: pytest.fail("merged in the server"))
    calls = fake_children(monkeypatch, {"ok": True, "max_abs_logit_diff": 1e-5,
                                        "tolerance": 0.01, "path": str(run / "merged")})

    class Fake:
        def compare(self, prompt, history_base, history_tuned, gen):
            assert gen.max_new_tokens == 16 and history_tuned == [("hi", "hello")]
            yield "I am", ""
            yield "I am SmolLM.", "I'm Nova."
    monkeypatch.setattr(chat, "get_comparer", lambda r: Fake())

    client = Client(app_url, verbose=False)
    rep = client.predict(run.name, api_name="/merge")
    assert rep["ok"] and rep["folder"] == f"runs/{run.name}/merged"  # no server path
    assert calls[0]["argv"][:2] == ["merge", str(run)]
    job = client.submit(run.name, "Who are you?", [["hi", "hello"]], [["hi", "hello"]], 16,
                        api_name="/compare")
    assert list(job.result()) == ["I am SmolLM.", "I'm Nova."]


def test_the_app_answers_while_a_merge_runs(app_url, monkeypatch):
    """The merge is a child process the server only waits for: other requests (the
    Training tab's polling, another tab) are answered meanwhile."""
    run = paths.runs_dir() / "done-20250101-120000"
    run.mkdir(parents=True)
    (run / "preset.yaml").write_text(presets.to_yaml(presets.load("cpu-demo")), "utf-8")
    runs.write_status(run, state="completed", pid=os.getpid(), step=3, max_steps=3)
    fake_children(monkeypatch, {"ok": True, "max_abs_logit_diff": 1e-5, "tolerance": 0.01,
                                "path": str(run / "merged")},
                  lines=["loading the unquantised base model", "merging"], pause=4)
    client = Client(app_url, verbose=False)
    job = client.submit(run.name, api_name="/merge")
    deadline = time.monotonic() + 20
    while not list((paths.home() / "tmp").glob("merge-*.log")):  # the child has started
        assert time.monotonic() < deadline, "the merge child never started"
        time.sleep(0.1)
    t0 = time.monotonic()
    assert client.predict(run.name, api_name="/status")["state"] == "completed"
    assert "cpu-demo" in [p["name"] for p in client.predict(api_name="/presets")]
    assert time.monotonic() - t0 < 4 and not job.done()
    assert job.result()["ok"]


def test_serves_the_page_but_no_file_outside_home(app_url):
    assert _get(app_url) == 200
    assert _get(app_url + "gradio_api/file=/etc/passwd") in (403, 404)
    assert _get(app_url + f"gradio_api/file={paths.PROJECT_ROOT / 'launch.py'}") in (403, 404)


def test_busy_port_is_a_one_line_error(_workbench_home):
    saved = dict(os.environ)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        try:
            with pytest.raises(server.LaunchError, match=f"port {port} .* in use"):
                server.run_app("127.0.0.1", port, None, None, block=False)
        finally:
            os.environ.clear()
            os.environ.update(saved)
