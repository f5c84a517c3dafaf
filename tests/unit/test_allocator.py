"""train.allocator: a fixed mmap threshold only with gradient checkpointing on a CPU, never
over the user's own setting; what was set is logged."""

import pytest

from workbench.train import allocator


@pytest.fixture
def calls(monkeypatch):
    """mallopt calls, recorded instead of made (the test process keeps its allocator)."""
    made = []

    class Libc:
        @staticmethod
        def mallopt(param, value):
            made.append((param, value))
            return 1
    monkeypatch.setattr(allocator.ctypes, "CDLL", lambda name: Libc)
    monkeypatch.setattr(allocator.sys, "platform", "linux")
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    monkeypatch.delenv("WORKBENCH_MALLOC", raising=False)
    return made


def test_set_with_checkpointing_on_a_cpu_and_logged(calls):
    lines = []
    assert allocator.memory_first(True, False, lines.append) is True
    assert calls == [(-3, 4 * 1024 * 1024)]
    assert len(lines) == 1 and "4 MiB" in lines[0] and "WORKBENCH_MALLOC=default" in lines[0]


@pytest.mark.parametrize("checkpointing, cuda", [(False, False), (True, True), (False, True)])
def test_left_alone_without_checkpointing_or_on_cuda(calls, checkpointing, cuda):
    lines = []
    assert allocator.memory_first(checkpointing, cuda, lines.append) is False
    assert calls == [] and lines == []


@pytest.mark.parametrize("var, value", [("MALLOC_MMAP_THRESHOLD_", "131072"),
                                        ("WORKBENCH_MALLOC", "default")])
def test_the_users_setting_wins(calls, monkeypatch, var, value):
    monkeypatch.setenv(var, value)
    assert allocator.memory_first(True, False, print) is False
    assert calls == []


def test_no_glibc_no_change(calls, monkeypatch):
    """musl's mallopt returns 0; macOS and Windows have none: nothing is said either way."""
    class Musl:
        @staticmethod
        def mallopt(param, value):
            return 0
    monkeypatch.setattr(allocator.ctypes, "CDLL", lambda name: Musl)
    lines = []
    assert allocator.memory_first(True, False, lines.append) is False and lines == []
    monkeypatch.setattr(allocator.sys, "platform", "darwin")
    assert allocator.memory_first(True, False, lines.append) is False and lines == []
