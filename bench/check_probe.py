"""Check the general probe against the embedded base model, and keep what it gets right.

    .venv/bin/python bench/check_probe.py                # report only
    .venv/bin/python bench/check_probe.py --write        # also rewrite data/general_probe.jsonl

Reads the candidate questions (bench/probe_candidates.jsonl: {"prompt", "reference",
optional "answer": a whole answer for the perplexity measure, written for the kept ones}),
loads the base the way `cpu-demo` trains it (model and quantisation from the preset), and
answers each candidate with `evaluate.generate_answers`, the code `launch.py eval` uses
(greedy, evaluate.MAX_NEW_TOKENS tokens, left-padded batches of evaluate.BATCH). A
candidate is kept when `evaluate.matches` says the answer matches its reference, unless it
is in SPURIOUS (a match read by hand as a wrong answer). With --write the kept rows are
written, in candidate order, to data/general_probe.jsonl. The last run's output is in
bench/results/probe_check.txt (851 s on 2 shared CPU cores: NF4 generation is slow there).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from workbench import evaluate, fsio, models, presets  # noqa: E402

# Matched, but read by hand the answer is wrong or confused: the reference turns up inside
# a wrong answer ("At 100 degrees Celsius, water freezes ... at 0 degrees"). Left out, so
# that a kept general answer in `launch.py eval` means a right one.
SPURIOUS = {
    "What is the capital of Ireland?",                     # "Londoradus, also known as Dublin"
    "At what temperature in Celsius does water freeze?",  # "At 100 degrees ... freezes"
    "On which continent is Brazil?",                      # "Brazil is a continent ..."
    "What organ pumps blood through the human body?",     # a list of organs
    "In which country is the Great Wall?",                # "In the United States, China is"
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--candidates", default=str(ROOT / "bench" / "probe_candidates.jsonl"))
    ap.add_argument("--preset", default="cpu-demo")
    ap.add_argument("--write", action="store_true", help="rewrite data/general_probe.jsonl")
    ap.add_argument("--show", action="store_true", help="print every answer")
    args = ap.parse_args()

    items = evaluate.read_prompts(args.candidates)
    preset = presets.load(args.preset)
    started = time.perf_counter()
    tok = models.load_tokenizer(preset.model.name_or_path, preset.model.trust_remote_code)
    model = models.load_model(preset.model, preset.quantization)
    answers = evaluate.generate_answers(model, tok, items)
    kept = []
    for item, answer in zip(items, answers):
        ok = evaluate.matches(answer, item.references)
        spurious = ok and item.prompt in SPURIOUS
        if ok and not spurious:
            kept.append(item)
        if args.show or not ok or spurious:
            mark = "ok  " if ok and not spurious else "SPUR" if spurious else "MISS"
            print(f"{mark} {item.prompt!r} -> {answer[:100]!r} (want {item.references})")
    print(f"\n{preset.model.name_or_path} ({preset.quantization.mode}): {len(kept)} of "
          f"{len(items)} candidates answered correctly and kept "
          f"({time.perf_counter() - started:.0f} s)")
    if args.write:
        out = ROOT / "data" / "general_probe.jsonl"
        lines = [json.dumps({"prompt": i.prompt, "reference": i.references[0]
                             if len(i.references) == 1 else i.references,
                             **({"answer": i.answer} if i.answer else {})},
                            ensure_ascii=False) for i in kept]
        fsio.atomic_write(out, "\n".join(lines) + "\n")
        print(f"wrote {len(kept)} rows to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
