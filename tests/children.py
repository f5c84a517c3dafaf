"""A stand-in for the `launch.py` children the app starts, for fast UI tests.

`fake_children(monkeypatch, ...)` replaces `jobs.command` (the one function that builds a
child's command line), so `jobs.spawn` really starts a process, with its log file, its
environment and its `--json-out` result file, but the process is a small script that
prints some lines and writes the given result (or fails the way the CLI does: an
`error: ...` line and {"error": ...} in the result file, exit code 2). The returned list
records each start: its argv and the text of the preset YAML it was given.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from workbench.runs import jobs

SCRIPT = r"""
import json, os, sys, time
spec, argv = json.loads(sys.argv[1]), sys.argv[2:]
for name in spec["echo_env"]:
    print(f"env {name}={os.environ.get(name)}", flush=True)
for line in spec["lines"]:
    print(line, flush=True)
    time.sleep(spec["pause"])
out = argv[argv.index("--json-out") + 1] if "--json-out" in argv else None
if spec["fail"]:
    print("error: " + spec["fail"], file=sys.stderr, flush=True)
    if out:
        open(out, "w").write(json.dumps({"error": spec["fail"]}))
    sys.exit(2)
if out and spec["result"] is not None:
    open(out, "w").write(json.dumps(spec["result"]))
"""


def fake_children(monkeypatch, result=None, lines=(), fail=None, pause=0.0,
                  echo_env=()) -> list[dict]:
    calls: list[dict] = []
    spec = {"result": result, "lines": list(lines), "fail": fail, "pause": pause,
            "echo_env": list(echo_env)}

    def command(argv):
        yaml = next((Path(a) for a in argv if a.endswith(".yaml") and Path(a).is_file()),
                    None)
        calls.append({"argv": list(argv), "preset": yaml.read_text() if yaml else None})
        return [sys.executable, "-c", SCRIPT, json.dumps(spec), *argv]
    monkeypatch.setattr(jobs, "command", command)
    return calls
