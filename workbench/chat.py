"""Side-by-side answers: the base model and the fine-tuned one, from ONE loaded base.

    python launch.py chat RUN --prompt "Who are you?"

The base is loaded the way the run trained it (same quantisation) with the run's adapter
on top; the base answer is generated with the adapter switched off (PEFT's
`disable_adapter()`), the tuned answer with it on. Two copies of the base are never held
in memory. `compare()` streams: it yields (base_text, tuned_text) as tokens arrive.
"""

from __future__ import annotations

import threading
from pathlib import Path

from workbench import runs
from workbench.config import GenerationCfg
from workbench.errors import RunError
from workbench.models.answer_lora import ALL, answering


def build_messages(prompt: str, history: list[tuple[str, str]] | None,
                   system_prompt: str = "") -> list[dict]:
    """Chat messages for one side: optional system, earlier turns, the new prompt."""
    messages = [{"role": "system", "content": system_prompt}] if system_prompt.strip() else []
    for user, assistant in history or []:
        messages.append({"role": "user", "content": user})
        messages.append({"role": "assistant", "content": assistant})
    messages.append({"role": "user", "content": prompt})
    return messages


def generation_kwargs(gen: GenerationCfg, tokenizer) -> dict:
    kw = {"max_new_tokens": gen.max_new_tokens, "repetition_penalty": gen.repetition_penalty,
          "pad_token_id": tokenizer.pad_token_id, "eos_token_id": tokenizer.eos_token_id}
    if gen.temperature > 0:
        kw.update(do_sample=True, temperature=gen.temperature, top_p=gen.top_p)
    else:
        kw.update(do_sample=False, temperature=None, top_p=None, top_k=None)
    return kw


class Comparer:
    """One base model with the run's adapter; answers with the adapter off and on."""

    def __init__(self, run_ref):
        from peft import PeftModel

        from workbench import models
        self.run = runs.find(run_ref)
        if not runs.has_adapter(self.run):
            raise RunError(f"run {self.run.name} has no adapter yet: train it (or let it "
                           "finish) before comparing")
        self.preset = runs.load_preset(self.run)
        self.tokenizer = models.load_tokenizer(
            self.preset.model.name_or_path,
            trust_remote_code=self.preset.model.trust_remote_code)
        base = models.load_model(self.preset.model, self.preset.quantization)
        self.model = PeftModel.from_pretrained(base, str(self.run / "adapter"))
        self.model.eval()
        models.unpack_4bit_for_answers(self.model)  # on a CPU: once, not at every token
        # plain LoRA on plain Linear layers (after unpacking): lean layers whose rows switch
        # the adapter on and off; None keeps PEFT (CUDA, packed 4-bit, DoRA, ...)
        self.switch = models.lean_lora_for_answers(self.model)
        self.lock = threading.Lock()  # one generation at a time: the adapter switch is global

    def _stream(self, messages: list[dict], gen: GenerationCfg, adapter: bool):
        import torch
        from transformers import TextIteratorStreamer
        tok = self.tokenizer
        inputs = tok.apply_chat_template(messages, add_generation_prompt=True,
                                         return_tensors="pt", return_dict=True)
        inputs = {k: v.to(self.model.device) for k, v in inputs.items()}
        streamer = TextIteratorStreamer(tok, skip_prompt=True, skip_special_tokens=True)
        kwargs = dict(inputs, streamer=streamer, **generation_kwargs(gen, tok))
        errors = []

        def work():
            try:
                with torch.no_grad(), self._answering(ALL if adapter else None) as model:
                    model.generate(**kwargs)
            except BaseException as exc:  # noqa: BLE001 - reported to the caller below
                errors.append(exc)
                streamer.end()

        thread = threading.Thread(target=work, daemon=True)
        thread.start()
        text = ""
        for piece in streamer:
            text += piece
            yield text
        thread.join()
        if errors:
            raise errors[0]

    def _answering(self, rows):
        """The model to call with the adapter on for `rows` (ALL, a slice of the batch, or
        None: off) while inside (models.answer_lora.answering)."""
        return answering(self.model, self.switch, rows)

    def logits(self, input_ids, *, adapter: bool):
        """One forward pass's logits with the adapter on or off (for checks)."""
        import torch
        with self.lock, torch.no_grad(), self._answering(ALL if adapter else None) as model:
            return model(input_ids=input_ids).logits

    def answer(self, prompt: str, *, adapter: bool, history=None,
               gen: GenerationCfg | None = None) -> str:
        gen = gen or self.preset.generation
        text = ""
        with self.lock:
            for text in self._stream(build_messages(prompt, history, gen.system_prompt),
                                     gen, adapter):
                pass
        return text.strip()

    def compare(self, prompt: str, history_base=None, history_tuned=None,
                gen: GenerationCfg | None = None, stop: threading.Event | None = None):
        """Yield (base_text, tuned_text) while both answers stream in together.

        One batch of two rows through the one loaded base: PEFT's mixed-adapter batch runs
        the first row with the adapter off ("__base__") and the second with it on, so both
        sides get their first words after one prompt pass and the pair costs little more
        than one answer (before, the base answered in full before the tuned side began).
        Setting `stop` ends the generation at the next token."""
        gen = gen or self.preset.generation
        sides = [build_messages(prompt, history_base, gen.system_prompt),
                 build_messages(prompt, history_tuned, gen.system_prompt)]
        texts = ["", ""]
        with self.lock:
            for texts in self._stream_pair(sides, gen, stop or threading.Event()):
                yield texts[0], texts[1]
        yield texts[0].strip(), texts[1].strip()

    def _stream_pair(self, sides: list[list[dict]], gen: GenerationCfg,
                     stop: threading.Event):
        import torch
        tok = self.tokenizer
        rows = [tok.apply_chat_template(m, add_generation_prompt=True, tokenize=True,
                                        return_dict=True)["input_ids"] for m in sides]
        rows = [list(r[0]) if r and isinstance(r[0], list) else list(r) for r in rows]
        kwargs = generation_kwargs(gen, tok)
        pad = kwargs["pad_token_id"]
        if pad is None:
            pad = kwargs["pad_token_id"] = tok.eos_token_id
        width = max(len(r) for r in rows)
        # left padding: both rows end where generation starts
        input_ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows])
        attention = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
        streamer = _PairStreamer(tok)
        stopper = _StopOnEvent(stop)
        errors = []

        def work():
            from transformers import StoppingCriteriaList
            try:
                # row 0 base, row 1 tuned: lean layers add the adapter to row 1 only;
                # PEFT runs a mixed batch by adapter name
                mixed = {} if self.switch else {"adapter_names": ["__base__", ADAPTER_NAME]}
                with torch.no_grad(), self._answering(slice(1, 2)) as model:
                    model.generate(
                        input_ids=input_ids.to(self.model.device),
                        attention_mask=attention.to(self.model.device),
                        streamer=streamer, stopping_criteria=StoppingCriteriaList([stopper]),
                        **mixed, **kwargs)
            except BaseException as exc:  # noqa: BLE001 - reported to the caller below
                errors.append(exc)
            finally:
                streamer.end()

        thread = threading.Thread(target=work, daemon=True)
        thread.start()
        try:
            yield from streamer
        finally:
            stop.set()  # the caller went away (Stop, a closed page): end the generation
            thread.join()
        if errors:
            raise errors[0]


ADAPTER_NAME = "default"  # what PeftModel.from_pretrained calls the adapter it loads


class _StopOnEvent:
    """A stopping criterion: stop every row once the event is set."""

    def __init__(self, event: threading.Event):
        self.event = event

    def __call__(self, input_ids, scores, **kwargs):
        import torch
        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool)


class _PairStreamer:
    """A generate() streamer for a batch of rows (transformers' own handle one row): it
    collects each row's new tokens, stops a row at its end-of-sequence, and iterates the
    rows' decoded texts after every step."""

    def __init__(self, tokenizer):
        import queue
        self.tokenizer = tokenizer
        self.eos = set(_as_list(tokenizer.eos_token_id))
        self.queue: queue.Queue = queue.Queue()
        self.tokens: list[list[int]] | None = None
        self.done: list[bool] = []
        self.prompt_seen = False

    def put(self, value) -> None:
        if not self.prompt_seen:  # generate() first hands over the prompt
            self.prompt_seen = True
            return
        ids = value.reshape(value.shape[0], -1).tolist()
        if self.tokens is None:
            self.tokens, self.done = [[] for _ in ids], [False] * len(ids)
        for i, new in enumerate(ids):
            for token in new:
                if self.done[i]:
                    break
                if token in self.eos:
                    self.done[i] = True
                else:
                    self.tokens[i].append(token)
        self.queue.put([self.tokenizer.decode(t, skip_special_tokens=True)
                        for t in self.tokens])

    def end(self) -> None:
        self.queue.put(None)

    def __iter__(self):
        while True:
            item = self.queue.get()
            if item is None:
                return
            yield item


def _as_list(value) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


_cached: dict[str, Comparer] = {}
_cache_lock = threading.Lock()


def get_comparer(run_ref) -> Comparer:
    """The Comparer for a run, kept loaded; loading another run frees the previous one."""
    run = str(runs.find(run_ref))
    with _cache_lock:
        if run not in _cached:
            _cached.clear()  # never two bases in memory
            import gc
            gc.collect()
            _cached[run] = Comparer(run)
        return _cached[run]


def release() -> None:
    with _cache_lock:
        _cached.clear()


def compare_once(run_ref, prompt: str, gen: GenerationCfg | None = None) -> dict:
    """Both answers to one prompt, for the CLI and scripts."""
    comparer = Comparer(run_ref)
    base = tuned = ""
    for base, tuned in comparer.compare(prompt, gen=gen):
        pass
    return {"prompt": prompt, "base": base, "tuned": tuned, "run": Path(comparer.run).name}
