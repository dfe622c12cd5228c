"""The collector tuning used by the server and by the load generator of ``fleet bench ingest``."""

from __future__ import annotations

import gc
import weakref

from server.gctuning import OLDER_THRESHOLD, YOUNG_THRESHOLD, tuned_for_many_sockets


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


def test_what_lives_at_entry_is_left_out_of_collections_until_the_block_ends() -> None:
    before = gc.get_threshold()
    survivor = [_Node() for _ in range(1000)]  # what the open connections would be
    with tuned_for_many_sockets():
        assert gc.get_threshold() == (YOUNG_THRESHOLD, OLDER_THRESHOLD, OLDER_THRESHOLD)
        assert gc.get_freeze_count() >= len(survivor)
        # In no generation: no pass, however full, walks it.
        assert not any(o is survivor[0] for o in gc.get_objects())
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
    assert any(o is survivor[0] for o in gc.get_objects())


def test_cycles_made_inside_the_block_are_still_collected() -> None:
    with tuned_for_many_sockets():
        a, b = _Node(), _Node()
        a.other, b.other = b, a
        gone = weakref.ref(a)
        del a, b
        assert gone() is not None  # a cycle: reference counting alone never frees it
        gc.collect()
        assert gone() is None
