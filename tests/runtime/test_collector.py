"""The hub's collector settings: rarer collections, and the start-up heap frozen once."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from fleet.runtime import collector


@pytest.fixture
def restored() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


@pytest.mark.usefixtures("restored")
def test_tune_and_settle() -> None:
    collector.tune()
    assert gc.get_threshold() == collector.THRESHOLDS
    garbage = Node()
    garbage.self = garbage  # a cycle nothing refers to: collected before the freeze, not frozen
    alive = weakref.ref(garbage)
    del garbage
    assert alive() is not None  # only the collector frees a cycle
    frozen = collector.settle()
    assert alive() is None
    assert frozen == gc.get_freeze_count() > 1000  # this process's modules, at least


class Node:
    self: object
