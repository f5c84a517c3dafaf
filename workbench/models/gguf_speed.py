"""Reading a GGUF file's metadata about 4× faster, for every reader in the process.

gguf's GGUFReader (0.19) slices its np.memmap once per value it reads: SmolLM2's tokenizer
alone is ~98,000 strings (tokens and merges), two slices each, and every slice of a memmap
runs numpy's subclass hooks. Reading the embedded model's file took 5.3 s on a 2-core AVX2
CPU; transformers reads a GGUF twice per `from_pretrained(gguf_file=...)` (config, then
weights), and importing, exporting and verifying read it again.

`install()` makes GGUFReader slice a plain ndarray view of the same mapping instead: the
same bytes, dtypes, byte order and shapes, still backed by the file (1.4 s for that file).
tests/unit/test_gguf_speed.py compares every field and tensor with the stock reader's. It
changes gguf's class for the whole process (transformers constructs its own reader), so it
applies only to the gguf version it was checked against; with another one it does nothing.
"""

from __future__ import annotations

import numpy as np  # only imported where gguf (which needs numpy) is about to read

CHECKED_VERSION = "0.19."
stock_get = None  # GGUFReader._get as gguf wrote it, once install() replaced it


def _get(self, offset, dtype, count=1, override_order=None):
    """GGUFReader._get over a plain ndarray view of self.data (see the module docstring);
    called once per value read, so nothing is imported here."""
    plain = self.__dict__.get("_wb_plain")
    if plain is None or plain.base is not self.data:
        plain = self._wb_plain = self.data.view(np.ndarray)
    dt = np.dtype(dtype)
    count = int(count)
    arr = plain[offset:offset + dt.itemsize * count].view(dt)[:count]
    order = self.byte_order if override_order is None else override_order
    return arr.view(arr.dtype.newbyteorder(order))


def install() -> bool:
    """Patch GGUFReader once; False (and nothing changed) for an unchecked gguf version."""
    from importlib.metadata import PackageNotFoundError, version
    try:
        if not version("gguf").startswith(CHECKED_VERSION):
            return False
        from gguf import gguf_reader
    except (PackageNotFoundError, ImportError):
        return False
    global stock_get
    reader = gguf_reader.GGUFReader
    if reader._get is not _get:
        stock_get = reader._get
        reader._get = _get
    return True
