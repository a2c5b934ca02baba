"""QuarantineBook: the latest notice per instance wins; a notice ends at its `until`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from synod.core.quarantine import QuarantineBook
from synod.wire import Envelope, Heartbeat, Sender
from synod.wire.messages import QuarantineNotice

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
SUP = Sender(role="supervisor", instance="supervisor-0")


def notice(
    instance: str, active: bool, until: datetime | None = None
) -> Envelope[QuarantineNotice]:
    body = QuarantineNotice(instance=instance, role="reviewer", active=active, until=until)
    return Envelope.new(body, sender=SUP)


def test_latest_notice_wins_and_expiry_needs_no_release() -> None:
    book = QuarantineBook()
    assert book.apply(notice("reviewer-1", True, T0 + timedelta(minutes=5)))
    assert book.apply(notice("reviewer-2", True, T0 + timedelta(minutes=1)))
    assert book.active(T0) == {"reviewer-1", "reviewer-2"}
    assert book.active(T0 + timedelta(minutes=2)) == {"reviewer-1"}  # reviewer-2's ran out
    book.apply(notice("reviewer-1", False))
    assert book.active(T0) == {"reviewer-2"}


def test_other_records_are_ignored() -> None:
    book = QuarantineBook()
    beat = Envelope.new(Heartbeat(instance="coder-0", role="coder"), sender=SUP)
    assert not book.apply(beat)
    assert book.active(T0) == frozenset()


def test_the_key_is_the_instance_so_compaction_keeps_the_latest() -> None:
    assert notice("reviewer-3", True).key == b"reviewer-3"
