"""The mount daemon collects cyclic garbage when idle, not inside a busy walk."""

import gc
import weakref

import pytest

from n4afs.surfaces.fuse_ops import IdleCollector


class Cycle:
    def __init__(self) -> None:
        self.me = self


@pytest.fixture
def gc_off():
    gc.disable()
    yield
    gc.unfreeze()
    gc.enable()


def garbage_cycle() -> weakref.ref:
    cycle = Cycle()
    return weakref.ref(cycle)  # only the cycle keeps it alive now


def test_idle_ticks_collect_cycles_and_busy_ticks_do_not(gc_off, monkeypatch):
    monkeypatch.setattr(IdleCollector, "IDLE_OBJECTS", 1_000)
    collector = IdleCollector()
    ref = garbage_cycle()
    keep = [[i] for i in range(5_000)]  # "callbacks" allocating between ticks: busy
    collector.tick()
    assert ref() is not None and collector.collections == 0
    collector.tick()  # nothing allocated since the last tick: idle
    assert ref() is None and collector.collections == 1
    collector.tick()  # idle, but nothing new to collect
    assert collector.collections == 1
    del keep


def test_a_long_busy_spell_still_collects(gc_off, monkeypatch):
    monkeypatch.setattr(IdleCollector, "BUSY_OBJECTS", 2_000)
    collector = IdleCollector()
    ref = garbage_cycle()
    keep = [[i] for i in range(5_000)]
    collector.tick()
    assert ref() is None and collector.collections == 1
    del keep


def test_a_replaced_tree_generation_is_freed_by_reference_counting(ws, gc_off):
    """The daemon runs without automatic GC and freezes what survives a collection, so a
    generation replaced by a refresh must not sit in a reference cycle: it would never be
    freed (found in review: views -> cached result folders -> render closures -> views)."""
    from n4afs.tree.tree import Tree

    template = [{"_or_": ["snv", "msc"]}, {"pls": {"n_components": 2}}]
    ws.run(templates=[template], datasets=["chemotools:fermentation"], cv=3, name="first")
    tree = Tree(ws, auto_refresh=False)
    tree.refresh()
    tree.prepare()
    for path, node in tree.walk_files(()):  # build every folder, as a walk through the mount does
        if path[-1].endswith(".yaml"):
            tree.read(node)
    first = weakref.ref(tree._generation.views)
    gc.freeze()  # what IdleCollector does after a collection
    for name in ("second", "third"):  # two refreshes: the first generation is not `previous`
        ws.run(templates=[template], datasets=["fermentation"], cv=3, name=name)
        assert tree.refresh()
    assert first() is None
