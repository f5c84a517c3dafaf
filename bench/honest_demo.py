"""The honest cpu-demo (issue 11 item 5): does cpu-demo teach a new name without breaking
general answers, with and without data.mix?

    .venv/bin/python bench/honest_demo.py [--mix-fraction 0.5] [--max-new-tokens 24]
        [--identity FILE] [--home DIR] [--set train.learning_rate=1e-4 ...] [--markdown]

Trains cpu-demo twice on bench/identity_quillon.jsonl (40 rows, a name, "Quillon" of
"Larkspur Studio", that the project never used, so the base cannot know it; or --identity,
e.g. bench/identity_quillon72.jsonl: the same 40 and 32 more, as many rows as the shipped
data/identity.jsonl): once with
data.mix empty, once with data.mix [{path: data/general_mix.jsonl, fraction: F}]. Then, with
one base model loaded for both runs (`launch.py eval A B --json`):
- identity: bench/identity_quillon_probe.jsonl, six "who are you" prompts (two from the
  training set, four phrased differently), reference "Quillon": how many answers say it,
  base and tuned;
- general: data/general_probe.jsonl: kept_general (of the prompts the base answers
  correctly, how many the run still does; goal >= 90%) and general perplexity (goal: at most
  20% above the base's).
Runs go to a temporary WORKBENCH_HOME (or --home); the two eval reports are written there as
honest_demo.json. Prints one row per variant (a Markdown table with --markdown).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IDENTITY = "bench/identity_quillon.jsonl"
IDENTITY_PROBE = "bench/identity_quillon_probe.jsonl"
GENERAL_PROBE = "data/general_probe.jsonl"
MIX = "data/general_mix.jsonl"


def launch(args: list[str], env: dict, capture: bool = False) -> str:
    cmd = [sys.executable, str(ROOT / "launch.py"), *args]
    print("$", " ".join(cmd[1:]), file=sys.stderr, flush=True)
    done = subprocess.run(cmd, cwd=ROOT, env=env, check=True, text=True,
                          stdout=subprocess.PIPE if capture else sys.stderr)
    return done.stdout if capture else ""


def train(name: str, identity: str, mix: str, extra: list[str], env: dict
          ) -> tuple[str, float]:
    started = time.perf_counter()
    sets = ["--set", f"data.path={identity}", "--set", f"data.mix={mix}"]
    for s in extra:
        sets += ["--set", s]
    launch(["train", "cpu-demo", *sets, "--name", name], env)
    folder = sorted((Path(env["WORKBENCH_HOME"]) / "runs").glob(f"{name}-*"))[-1]
    return folder.name, time.perf_counter() - started


def evaluate(runs: list[str], prompts: str, tokens: int, env: dict) -> dict:
    out = launch(["eval", *runs, "--prompts", prompts, "--max-new-tokens", str(tokens),
                  "--json"], env, capture=True)
    return json.loads(out)


def rows(general: dict, identity: dict, seconds: dict) -> list[dict]:
    out = []
    for g, i in zip(general["runs"], identity["runs"]):
        ppl = g["perplexity"]["general"]
        said = sum(bool(a["tuned_match"]) for a in i["answers"])
        base_said = sum(bool(a["base_match"]) for a in i["answers"])
        kept = g["kept_general"]
        out.append({"run": g["run"], "train_s": round(seconds[g["run"]]),
                    "name_said": f"{said}/{len(i['answers'])}",
                    "base_name_said": f"{base_said}/{len(i['answers'])}",
                    "kept_general": f"{kept['kept']}/{kept['of']}",
                    "kept_share": round(kept["kept"] / kept["of"], 3) if kept["of"] else None,
                    "ppl_general_base": round(ppl["base"], 2),
                    "ppl_general_tuned": round(ppl["tuned"], 2),
                    "ppl_general_ratio": round(ppl["tuned"] / ppl["base"], 3),
                    "ppl_eval_base": round(g["perplexity"]["eval"]["base"], 2),
                    "ppl_eval_tuned": round(g["perplexity"]["eval"]["tuned"], 2)})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mix-fraction", type=float, default=0.5)
    ap.add_argument("--max-new-tokens", type=int, default=24)
    ap.add_argument("--identity", default=IDENTITY, help="the identity set to train on")
    ap.add_argument("--home", help="WORKBENCH_HOME (default: a new temporary folder)")
    ap.add_argument("--set", action="append", default=[], dest="sets",
                    help="extra preset override for both runs, e.g. train.learning_rate=1e-4")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    home = Path(args.home or tempfile.mkdtemp(prefix="honest-demo-"))
    env = {**os.environ, "WORKBENCH_HOME": str(home)}
    seconds = {}
    names = []
    for name, mix in (("nomix", "[]"),
                      ("mix", f"[{{path: {MIX}, fraction: {args.mix_fraction}}}]")):
        run, took = train(name, args.identity, mix, args.sets, env)
        seconds[run] = took
        names.append(run)
    general = evaluate(names, GENERAL_PROBE, args.max_new_tokens, env)
    identity = evaluate(names, IDENTITY_PROBE, args.max_new_tokens, env)
    (home / "honest_demo.json").write_text(json.dumps(
        {"general": general, "identity": identity, "train_seconds": seconds}, indent=1))
    table = rows(general, identity, seconds)
    if args.markdown:
        keys = list(table[0])
        print("| " + " | ".join(keys) + " |")
        print("|" + "---|" * len(keys))
        for r in table:
            print("| " + " | ".join(str(r[k]) for k in keys) + " |")
    else:
        print(json.dumps(table, indent=1))
    print(f"reports: {home / 'honest_demo.json'}", file=sys.stderr)


if __name__ == "__main__":
    main()
