"""The wake schedule: only due tasks come out, in time order; a reschedule replaces the
old wake; held tasks wait for their group; stale heap entries never come out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from synod.core.task.wakes import SOON, Wakes

T0 = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


def test_only_due_tasks_come_out_earliest_first_and_leave_the_schedule() -> None:
    w = Wakes()
    w.set("c", at(30))
    w.set("a", at(10))
    w.set("b", at(20))
    assert w.due(at(5)) == []
    assert w.due(at(20)) == [("a", at(10)), ("b", at(20))]  # at the wake counts as due
    assert "a" not in w
    assert "b" not in w
    assert w.when("c") == at(30)
    assert w.next_at() == at(30)
    assert w.due(at(20)) == []  # taken out once


def test_a_reschedule_replaces_the_wake_and_none_drops_the_task() -> None:
    w = Wakes()
    w.set("t", at(10))
    w.set("t", at(50))  # a hedge went out: the deadline is next
    assert w.due(at(20)) == []  # the old entry is stale
    assert w.next_at() == at(50)
    w.set("t", at(5))  # earlier again
    assert w.due(at(20)) == [("t", at(5))]
    w.set("u", at(10))
    w.set("u", None)  # finished: no time needed
    assert "u" not in w
    assert w.due(at(100)) == []
    assert len(w) == 0


def test_earliest_and_soon_only_ever_bring_a_wake_forward() -> None:
    w = Wakes()
    w.earliest("t", at(10))
    w.earliest("t", at(20))
    assert w.when("t") == at(10)
    w.soon("t")
    assert w.when("t") == SOON
    assert w.due(at(-1_000_000)) == [("t", SOON)]  # due at any time


def test_a_held_task_waits_for_its_group_then_is_due_at_its_wake() -> None:
    w = Wakes()
    w.set("a", at(1))
    w.set("b", at(2))
    w.set("c", at(3))
    due = w.due(at(5))
    for task_id, wake in due[:2]:
        w.hold(task_id, 7, wake)  # partition 7 is being rebuilt
    assert w.held() == 2
    assert "a" in w  # held, not forgotten
    assert w.when("a") is None
    assert w.release([1, 2]) == 0  # other groups: nothing
    assert w.due(at(5)) == []
    w.set("b", at(60))  # its partition's rebuild ran it meanwhile
    assert w.release([7]) == 2
    assert w.held() == 0
    assert w.due(at(5)) == [("a", at(1)), ("b", at(2))]  # the earlier of the two wakes
    assert w.release([7]) == 0  # released once


def test_a_dropped_task_leaves_its_group_too() -> None:
    w = Wakes()
    w.hold("a", 3, at(1))
    w.hold("b", 3, at(1))
    w.drop("a")
    assert "a" not in w
    assert w.release([3]) == 1
    assert [t for t, _ in w.due(at(2))] == ["b"]


def test_a_task_held_under_a_new_group_moves_there_with_its_earliest_wake() -> None:
    w = Wakes()
    w.hold("a", 1, at(5))
    w.hold("a", 2, at(9))
    assert w.release([1]) == 0
    assert w.release([2]) == 1
    assert w.due(at(6)) == [("a", at(5))]


def test_stale_entries_are_compacted_away() -> None:
    w = Wakes()
    for i in range(1_000):
        w.set("t", at(i))  # a task rescheduled many times
    assert len(w._heap) <= 2 * len(w) + 64 + 1
    assert w.due(at(10_000)) == [("t", at(999))]


def test_many_tasks_a_sweep_takes_only_the_due_ones() -> None:
    w = Wakes()
    for i in range(10_000):
        w.set(f"t{i}", at(600 + i % 100))  # deadlines, far off
    w.set("t5", at(1))  # one hedge due soon
    assert w.due(at(2)) == [("t5", at(1))]
    assert len(w) == 9_999
