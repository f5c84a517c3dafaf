"""Shared pytest fixtures.

- every test gets its own empty WORKBENCH_HOME (runs, presets, caches never leak between
  tests or into ~/.workbench);
- `tiny_model_dir`: a tiny random Llama + the test tokenizer, built once per session;
- `embedded_model_dir`: the embedded SmolLM2-135M imported from its GGUF, once, into a cache
  that outlives the session (see below); `embedded_home` makes it the current test's cache so
  `resolve("embedded:smollm2-135m-instruct")` is instant.

Treat the session-scoped folders as read-only: copy them before changing anything.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
from pathlib import Path

import pytest

from tests.tiny import make_tiny_model

# Parallel workers (make test: pytest -n 2) share the cores: each worker, and every process
# it starts (training children, the app), computes on its share. Two OpenMP teams of two
# threads on two cores wait on each other's descheduled threads: a 2-minute training took
# over 9 minutes that way.
# A test that trains in-process with gradient checkpointing would otherwise fix this
# worker's mmap threshold for every later test (train/allocator.py); its logic is tested
# with a stand-in libc in tests/unit/test_allocator.py.
os.environ.setdefault("WORKBENCH_MALLOC", "default")
if os.environ.get("PYTEST_XDIST_WORKER"):
    _workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // _workers))


@pytest.fixture(autouse=True)
def _workbench_home(tmp_path, monkeypatch):
    home = tmp_path / "workbench-home"
    monkeypatch.setenv("WORKBENCH_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("tiny-model"))


def _embedded_cache_key() -> str:
    """Changes whenever the import code, the GGUF or transformers change, so a cached import
    is never staler than the code under test."""
    import transformers

    from workbench import models
    gguf = models.embedded_gguf()
    st = gguf.stat()
    from workbench.models import sources
    source = Path(sources.__file__).read_bytes()  # the import code
    key = hashlib.sha1(source + f"{st.st_size}:{st.st_mtime_ns}:{transformers.__version__}"
                       .encode())
    return key.hexdigest()[:12]


@pytest.fixture(scope="session")
def embedded_model_dir(request, tmp_path_factory) -> Path:
    """The imported embedded model folder (float32 safetensors, ~540 MB).

    Why a persistent folder: the GGUF import takes ~25 s on a 2-core CPU; kept under
    .pytest_cache/ (gitignored, dropped by `pytest --cache-clear`) it is paid once per change
    of models.py/transformers rather than on every test run. Without the cache plugin
    (-p no:cacheprovider) it falls back to a per-session temp folder.
    """
    from workbench import models
    cache = getattr(request.config, "cache", None)
    if cache is not None:
        root = Path(cache.mkdir("workbench-embedded"))
        key = _embedded_cache_key()
        for old in root.iterdir():  # imports made by older code: 540 MB each, drop them
            if old.name != key and not old.name.startswith("."):
                shutil.rmtree(old, ignore_errors=True)
        home = root / key
    else:
        home = tmp_path_factory.mktemp("embedded-home")
    with pytest.MonkeyPatch.context() as mp, _held(home.parent / f".{home.name}.lock"):
        # parallel workers (pytest -n) share the cache: one imports, the others wait
        mp.setenv("WORKBENCH_HOME", str(home))
        return models.resolve(models.EMBEDDED)


@contextlib.contextmanager
def _held(lock_path: Path):
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@pytest.fixture
def embedded_home(_workbench_home, embedded_model_dir) -> Path:
    """This test's WORKBENCH_HOME with the session's embedded import (and its cache of
    quantised weights: nf4 quantising takes 15-45 s on a CPU) linked into its cache, so code
    under test resolves and loads the embedded model without redoing either."""
    models_dir = _workbench_home / "cache" / "models"
    models_dir.mkdir(parents=True, exist_ok=True)
    quantized = embedded_model_dir.parent / "quantized"
    quantized.mkdir(exist_ok=True)
    for target in (embedded_model_dir, quantized):
        link = models_dir / target.name
        if not link.exists():
            os.symlink(target, link, target_is_directory=True)
    return _workbench_home


# The longest files first: with two workers (make test: pytest -n 2 --dist loadfile) a long
# file started last would run alone at the end. Sequential runs are not affected.
SLOW_FIRST = ("tests/browser/test_ui_browser.py", "tests/e2e/test_cpu_demo.py",
              "tests/e2e/test_export_embedded.py", "tests/tiny/test_distributed.py",
              "tests/browser/test_first_run.py", "tests/tiny/test_export.py",
              "tests/browser/test_chat_eval.py", "tests/tiny/test_samples.py")


def pytest_collection_modifyitems(config, items):
    def rank(item):
        path = item.nodeid.split("::")[0]
        return SLOW_FIRST.index(path) if path in SLOW_FIRST else len(SLOW_FIRST)
    items.sort(key=rank)  # stable: the rest keep their order
