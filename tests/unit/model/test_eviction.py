"""LRU eviction decisions (`wharf.model.eviction.make_room`): pure, one test per rule."""

from wharf.model.eviction import Resident, Room, make_room


def _residents(*specs: tuple[str, int, float, bool]) -> list[Resident]:
    return [Resident(key, size, last_used, busy) for key, size, last_used, busy in specs]


def test_without_a_budget_nothing_is_evicted() -> None:
    assert make_room(_residents(("a", 10, 1.0, False)), 10, None, 10**12) == Room()


def test_a_model_larger_than_the_whole_budget_is_refused() -> None:
    room = make_room([], 0, 100, 101)
    assert room.evict == () and "more than the whole memory budget of 100 bytes" in room.refused


def test_nothing_is_evicted_while_it_fits() -> None:
    assert make_room(_residents(("a", 40, 1.0, False)), 40, 100, 60) == Room()


def test_the_least_recently_used_idle_models_go_first_until_it_fits() -> None:
    residents = _residents(("new", 30, 9.0, False), ("old", 30, 1.0, False), ("mid", 30, 5.0, False))
    assert make_room(residents, 90, 100, 40) == Room(("old",))
    assert make_room(residents, 90, 100, 50) == Room(("old", "mid"))


def test_busy_models_are_never_evicted() -> None:
    residents = _residents(("old", 30, 1.0, True), ("mid", 30, 5.0, False), ("new", 30, 9.0, False))
    assert make_room(residents, 90, 100, 30) == Room(("mid",))


def test_it_is_refused_when_the_idle_models_are_not_enough() -> None:
    residents = _residents(("a", 50, 1.0, True), ("b", 20, 2.0, False))
    room = make_room(residents, 70, 100, 60)
    assert room.evict == ()
    assert "leaves 50 free" in room.refused and "models serving requests hold 50 bytes" in room.refused
