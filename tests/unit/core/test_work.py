"""A worker's and a juror's records: ids derived from the request, writes before the outcome."""

from __future__ import annotations

from synod.core.bugs import plant
from synod.core.work import step_records, vote_record
from synod.core.workspace import write_id_for
from synod.ids import derived_id
from synod.wire import Envelope, Sender, StepCompleted, StepFailed, StepRequested, Vote

PLANNER = Sender(role="planner", instance="planner-0")
CODER = Sender(role="coder", instance="coder-1")


def _request(files: list[str]) -> Envelope[StepRequested]:
    body = StepRequested(step_id="s1", role="coder", title="t", instructions="i", files=files)
    return Envelope.new(body, sender=PLANNER, task_id="t-1", message_id="req-1", attempt=2)


def test_a_completed_coding_step_writes_its_files_then_reports_under_derived_ids() -> None:
    request = _request(["a.py", "b.py"])
    out = step_records(request, StepCompleted(step_id="s1", output="x = 1"), CODER)
    assert [log for log, _ in out] == ["workspace", "workspace", "task-events"]
    writes = [env for log, env in out if log == "workspace"]
    assert [w.message_id for w in writes] == [write_id_for("req-1", p) for p in ("a.py", "b.py")]
    outcome = out[-1][1]
    assert outcome.message_id == derived_id("req-1", "outcome")
    assert outcome.causes == ["req-1"]
    assert outcome.attempt == 2
    # A redelivered request yields the very same records.
    again = step_records(request, StepCompleted(step_id="s1", output="x = 1"), CODER)
    assert [e.message_id for _, e in again] == [e.message_id for _, e in out]


def test_a_failed_step_writes_nothing() -> None:
    failed = StepFailed(step_id="s1", error_class="transient", error="boom")
    out = step_records(_request(["a.py"]), failed, CODER)
    assert [log for log, _ in out] == ["task-events"]


def test_the_planted_bug_reports_before_the_writes() -> None:
    with plant("outcome_before_writes"):
        out = step_records(_request(["a.py"]), StepCompleted(step_id="s1"), CODER)
    assert [log for log, _ in out] == ["task-events", "workspace"]


def test_a_vote_has_one_id_per_juror_and_round() -> None:
    round_ = Envelope.new(
        StepCompleted(step_id="x"),
        sender=Sender(role="consensus", instance="c-0"),
        task_id="t-1",
        message_id="round-1",
    )
    juror = Sender(role="reviewer", instance="reviewer-2")
    yes = vote_record(round_, Vote(proposal_id="p", voter="reviewer-2", choice="c"), juror)
    no = vote_record(round_, Vote(proposal_id="p", voter="reviewer-2", kind="reject"), juror)
    assert yes.message_id == no.message_id == derived_id("round-1", "reviewer-2")
    assert yes.causes == ["round-1"]
