"""The outcome's test verdict, from the jurors' runs of the tests on one answer (pure).

Each juror runs the task's tests itself, so a proposal may have several runs.
They should agree; when they do not (a flaky test, a juror whose run broke),
a failure anywhere counts: the outcome says the tests passed only if no run
saw one fail. Runs that could not happen (`passed` None) say nothing.
"""

from __future__ import annotations

from collections.abc import Iterable

from synod.wire import AnswerVerified


def verdict_of_runs(runs: Iterable[AnswerVerified]) -> tuple[bool | None, str]:
    """(tests_passed, tests_summary) for an outcome; (None, "") when nobody ran them."""
    runs = sorted(runs, key=lambda r: r.voter)
    if not runs:
        return None, ""
    failing = [r for r in runs if r.passed is False]
    passing = [r for r in runs if r.passed is True]
    if failing:
        verdict: bool | None = False
        summary = failing[0].summary
        if passing:
            summary += f" ({len(passing)} of {len(runs)} runs passed)"
    elif passing:
        verdict, summary = True, passing[0].summary
    else:
        verdict, summary = None, f"not verified: {runs[0].summary}"
    return verdict, summary[:1_000]
