"""gguf_speed.install() changes how gguf's GGUFReader slices the file, for the whole process:
what it reads must be exactly what the stock reader reads (issue 9: every read of the
embedded model's GGUF took ~5 s of a 2-core CPU, most of it numpy's memmap hooks)."""

import numpy as np
import pytest

gguf = pytest.importorskip("gguf")

from workbench.models import gguf_speed  # noqa: E402


def _write(path):
    """A GGUF with every kind of value a model file holds: scalars, strings, string and
    number arrays (a tokenizer's), and float32, float16 and Q8_0 tensors."""
    from gguf.quants import quantize
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_uint32("llama.block_count", 2)
    w.add_float32("llama.rope.freq_base", 100000.0)
    w.add_bool("tokenizer.ggml.add_bos_token", False)
    w.add_string("general.name", "tiny ünïcode")
    w.add_array("tokenizer.ggml.tokens", [f"tok{i}" for i in range(300)] + ["", "✓"])
    w.add_array("tokenizer.ggml.token_type", list(range(302)))
    w.add_array("tokenizer.ggml.scores", [float(i) / 7 for i in range(302)])
    rng = np.random.default_rng(0)
    w.add_tensor("a.weight", rng.standard_normal((4, 64)).astype(np.float32))
    w.add_tensor("b.weight", rng.standard_normal((3, 32)).astype(np.float16))
    q8 = quantize(rng.standard_normal((2, 64)).astype(np.float32),
                  gguf.GGMLQuantizationType.Q8_0)
    w.add_tensor("c.weight", q8, raw_shape=q8.shape,
                 raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def _read_all(path):
    r = gguf.GGUFReader(str(path))
    fields = {k: (f.types, f.data, [(p.dtype, p.tobytes()) for p in f.parts],
                  f.contents() if f.types else None) for k, f in r.fields.items()}
    tensors = [(t.name, t.tensor_type, list(t.shape), t.data.dtype, t.data.shape,
                t.data.tobytes()) for t in r.tensors]
    return fields, tensors, r.data_offset, {type(t.data) for t in r.tensors}


def test_the_patched_reader_reads_exactly_what_the_stock_one_reads(tmp_path, monkeypatch):
    path = tmp_path / "t.gguf"
    _write(path)
    assert gguf_speed.install() is True  # (another test in this process may have already)
    stock = gguf_speed.stock_get
    assert stock is not None and stock is not gguf.gguf_reader.GGUFReader.__dict__["_get"]
    fast = _read_all(path)
    monkeypatch.setattr(gguf.gguf_reader.GGUFReader, "_get", stock)  # undone after
    expected = _read_all(path)
    assert fast[3] == {np.ndarray} and expected[3] == {np.memmap}  # each reader as meant
    assert fast[:3] == expected[:3]
    fields, tensors, *_ = fast
    assert fields["tokenizer.ggml.tokens"][3][-1] == "✓" and len(tensors) == 3
    assert fields["general.name"][3] == "tiny ünïcode"


def test_install_leaves_an_unchecked_gguf_version_alone(monkeypatch):
    import importlib.metadata
    before = gguf.gguf_reader.GGUFReader.__dict__["_get"]
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "9.9.9")
    assert gguf_speed.install() is False
    assert gguf.gguf_reader.GGUFReader.__dict__["_get"] is before
