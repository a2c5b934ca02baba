"""The simulated backend: deterministic, role-aware, and faulty exactly as its profile says."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter

import pytest

from synod.llm import (
    PROFILES,
    WRONG_MARKER,
    CodeOutput,
    FaultName,
    FaultProfile,
    Latency,
    LLMPermanentError,
    LLMRequest,
    LLMTimeoutError,
    LLMTransientError,
    PlanOutput,
    ResearchNotes,
    ReviewVerdict,
    SimBackend,
    SimulatedCrash,
    expected_answer,
)
from synod.llm.simcontent import stable_seed
from synod.wire.messages import Candidate


class VirtualSleep:
    """Records what the backend sleeps, and returns at once."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def only(fault: FaultName, **profile: float) -> FaultProfile:
    return FaultProfile(f"only-{fault}", {fault: 1.0}, Latency("fixed", 0.25), **profile)


def backend(profile: FaultProfile = PROFILES["none"], **kwargs: object) -> SimBackend:
    kwargs.setdefault("sleep", VirtualSleep())
    return SimBackend(seed=7, profile=profile, **kwargs)  # type: ignore[arg-type]


def request(role: str = "coder", **fields: object) -> LLMRequest:
    fields.setdefault("task_id", "task-1")
    fields.setdefault("step_id", "step-1")
    fields.setdefault("prompt", "Write a function that adds two numbers")
    return LLMRequest(role=role, **fields)  # type: ignore[arg-type]


async def test_same_inputs_same_output_fault_and_latency() -> None:
    hostile = PROFILES["hostile"]
    for i in range(50):
        req = request("researcher", step_id=f"s{i}", output_model=ResearchNotes)
        first, second = backend(hostile), backend(hostile)
        assert first.decide(req) == second.decide(req)
        if first.decide(req).fault in ("hang", "crash", "timeout", "transient", "malformed"):
            continue
        a, b = await first.complete(req), await second.complete(req)
        assert (a.text, a.fault, a.latency_s, a.usage) == (b.text, b.fault, b.latency_s, b.usage)


async def test_seed_task_step_attempt_and_role_each_change_the_output() -> None:
    base = await backend().complete(request())
    variants = [
        await SimBackend(seed=8, sleep=VirtualSleep()).complete(request()),
        await backend().complete(request(task_id="task-2")),
        await backend().complete(request(step_id="step-2")),
        await backend().complete(request(attempt=1)),
        await backend().complete(request("researcher")),
    ]
    assert all(v.text != base.text for v in variants)


def test_hashing_is_stable_across_processes_and_versions() -> None:
    # Pinned values: if these change, every recorded simulation stops replaying.
    assert stable_seed("a", 1) == stable_seed("a", 1) != stable_seed("a", 2)
    assert expected_answer("t1", "s1") == 7815
    sim = backend(PROFILES["hostile"])
    faults = [sim.decide(request(step_id=f"s{i}")).fault for i in range(15)]
    assert faults == [None] * 7 + ["malformed"] + [None] * 6 + ["loop"]


def test_hostile_fault_rates_over_5000_draws() -> None:
    hostile = PROFILES["hostile"]
    sim = backend(hostile)
    n = 5_000
    seen = Counter(sim.decide(request(step_id=f"s{i}")).fault for i in range(n))
    for fault, rate in hostile.rates.items():
        # Within 4 standard deviations of a binomial(n, rate).
        tolerance = 4 * (n * rate * (1 - rate)) ** 0.5
        assert abs(seen[fault] - n * rate) <= tolerance, (fault, seen[fault])


def test_hostile_meets_the_issue_minimums() -> None:
    hostile = PROFILES["hostile"]
    minimums = {"transient": 0.10, "timeout": 0.05, "malformed": 0.05, "wrong": 0.05}
    minimums |= {"loop": 0.02, "hang": 0.01}
    for fault, least in minimums.items():
        assert hostile.rate(fault) >= least  # type: ignore[arg-type]
    assert all(rate == 0 for rate in PROFILES["none"].rates.values())


async def test_latency_is_slept_with_the_injected_sleep_and_reported() -> None:
    sleep = VirtualSleep()
    sim = SimBackend(profile=PROFILES["none"], latency=Latency("fixed", 0.4), sleep=sleep)
    response = await sim.complete(request())
    assert sleep.calls == [0.4]
    assert response.latency_s == 0.4


async def test_zero_latency() -> None:
    sim = SimBackend(latency=Latency("fixed", 0.0), sleep=VirtualSleep())
    assert (await sim.complete(request())).latency_s == 0.0


@pytest.mark.parametrize(
    ("role", "model"),
    [
        ("planner", PlanOutput),
        ("researcher", ResearchNotes),
        ("coder", CodeOutput),
        ("reviewer", ReviewVerdict),
    ],
)
async def test_structured_outputs_validate_for_each_role(role: str, model: type) -> None:
    response = await backend().complete(request(role, output_model=model))
    assert isinstance(response.output(model), model)
    assert response.usage.calls == 1
    assert response.usage.input_tokens > 0
    assert response.usage.output_tokens > 0
    assert response.fault is None


async def test_unstructured_outputs_read_like_the_role() -> None:
    plan = await backend().complete(request("planner"))
    assert plan.parsed is None
    assert plan.text.startswith("Plan:")
    assert "[coder]" in plan.text
    code = await backend().complete(request("coder"))
    assert "def solve() -> int:" in code.text
    notes = await backend().complete(request("researcher"))
    assert "\n- " in notes.text


async def test_coder_writes_the_requested_files_and_a_checkable_solve() -> None:
    req = request(files=("pkg/adder.py", "README.md"), output_model=CodeOutput)
    output = (await backend().complete(req)).output(CodeOutput)
    assert [f.path for f in output.files] == ["pkg/adder.py", "README.md"]
    namespace: dict[str, object] = {}
    exec(output.files[0].content, namespace)
    assert namespace["solve"]() == expected_answer("task-1", "step-1")  # type: ignore[operator]
    assert WRONG_MARKER not in output.files[0].content


async def test_wrong_coder_returns_a_wrong_value_with_the_marker() -> None:
    output = (await backend(only("wrong")).complete(request(output_model=CodeOutput))).output(
        CodeOutput
    )
    namespace: dict[str, object] = {}
    exec(output.files[0].content, namespace)
    assert namespace["solve"]() != expected_answer("task-1", "step-1")  # type: ignore[operator]
    assert WRONG_MARKER in output.files[0].content


async def test_wrong_plan_is_a_valid_dag_without_the_review() -> None:
    response = await backend(only("wrong")).complete(request("planner", output_model=PlanOutput))
    plan = response.output(PlanOutput)
    assert response.fault == "wrong"
    assert "reviewer" not in {s.role for s in plan.steps}
    assert WRONG_MARKER in plan.rationale


CANDIDATES = (
    Candidate(candidate_id="c1", content="def solve(): return 1  # " + WRONG_MARKER),
    Candidate(candidate_id="c2", content="def solve(): return 2"),
    Candidate(candidate_id="c3", content="def solve(): return 3"),
)


async def test_honest_reviewer_votes_for_the_reference() -> None:
    req = request("reviewer", candidates=CANDIDATES, reference="c3", output_model=ReviewVerdict)
    verdict = (await backend().complete(req)).output(ReviewVerdict)
    assert (verdict.kind, verdict.choice) == ("choice", "c3")


async def test_honest_reviewer_without_reference_skips_marked_candidates() -> None:
    req = request("reviewer", candidates=CANDIDATES, output_model=ReviewVerdict)
    verdict = (await backend().complete(req)).output(ReviewVerdict)
    assert (verdict.kind, verdict.choice) == ("choice", "c2")


async def test_honest_reviewer_rejects_when_every_candidate_is_wrong() -> None:
    req = request("reviewer", candidates=CANDIDATES[:1], output_model=ReviewVerdict)
    assert (await backend().complete(req)).output(ReviewVerdict).kind == "reject"


async def test_lying_reviewer_votes_for_a_wrong_candidate_or_rejects() -> None:
    lying = backend(only("wrong"))
    req = request("reviewer", candidates=CANDIDATES, reference="c2", output_model=ReviewVerdict)
    verdict = (await lying.complete(req)).output(ReviewVerdict)
    assert verdict.kind == "choice"
    assert verdict.choice in ("c1", "c3")
    alone = request("reviewer", candidates=CANDIDATES[1:2], output_model=ReviewVerdict)
    assert (await lying.complete(alone)).output(ReviewVerdict).kind == "reject"


async def test_reviewer_accuracy_is_one_minus_the_wrong_rate() -> None:
    profile = FaultProfile("liars", {"wrong": 0.3}, Latency("fixed", 0.0))
    sim = backend(profile)
    n = 2_000
    right = 0
    for i in range(n):
        req = request(
            "reviewer",
            step_id=f"v{i}",
            candidates=CANDIDATES,
            reference="c2",
            output_model=ReviewVerdict,
        )
        right += (await sim.complete(req)).output(ReviewVerdict).choice == "c2"
    assert abs(right / n - 0.7) < 4 * (0.7 * 0.3 / n) ** 0.5


async def test_transient_fault_raises_a_transient_error() -> None:
    with pytest.raises(LLMTransientError) as caught:
        await backend(only("transient")).complete(request())
    assert caught.value.error_class == "transient"
    assert caught.value.reason in ("rate_limited", "overloaded")


async def test_timeout_spends_the_timeout_in_virtual_time_then_raises() -> None:
    sleep = VirtualSleep()
    with pytest.raises(LLMTimeoutError):
        await backend(only("timeout"), sleep=sleep).complete(request(timeout_s=3.5))
    assert sleep.calls == [3.5]


async def test_malformed_output_repaired_costs_two_calls() -> None:
    response = await backend(only("malformed", repair_success=1.0)).complete(
        request(output_model=CodeOutput)
    )
    assert response.fault == "malformed"
    assert response.usage.calls == 2
    assert isinstance(response.parsed, CodeOutput)


async def test_malformed_output_not_repaired_is_permanent_with_usage() -> None:
    with pytest.raises(LLMPermanentError) as caught:
        await backend(only("malformed", repair_success=0.0)).complete(
            request(output_model=CodeOutput)
        )
    assert caught.value.reason == "invalid_output"
    assert caught.value.usage.calls == 2


async def test_malformed_without_output_model_returns_the_text() -> None:
    response = await backend(only("malformed")).complete(request())
    assert response.fault == "malformed"
    assert response.parsed is None


async def test_loop_repeats_attempt_zero_exactly_at_any_attempt() -> None:
    honest, looping = backend(), backend(only("loop"))
    first = await honest.complete(request(attempt=0, output_model=CodeOutput))
    for attempt in (1, 2, 9):
        again = await looping.complete(request(attempt=attempt, output_model=CodeOutput))
        assert again.text == first.text
        assert again.fault == "loop"
    assert (await honest.complete(request(attempt=1))).text != first.text


async def test_hang_never_returns_until_cancelled() -> None:
    call = asyncio.ensure_future(backend(only("hang")).complete(request()))
    for _ in range(20):  # far more loop turns than a call with virtual sleep needs
        await asyncio.sleep(0)
    assert not call.done()
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call


async def test_crash_calls_the_hook_then_cannot_be_handled_as_an_error() -> None:
    crashes: list[str] = []
    sim = backend(only("crash"), crash=crashes.append)

    async def agent_step() -> None:
        try:
            await sim.complete(request())
        except Exception:  # what agent code does; a crash must get past it
            pytest.fail("a simulated crash was caught as an ordinary error")

    with pytest.raises(SimulatedCrash):
        await agent_step()
    assert len(crashes) == 1
    assert "task-1/step-1" in crashes[0]


async def test_unknown_output_model_ends_in_a_permanent_error() -> None:
    with pytest.raises(LLMPermanentError):
        await backend().complete(request("coder", output_model=PlanOutput))


async def test_a_crash_kills_the_process_not_the_request() -> None:
    """A restarted process (another `life`) mostly survives the request that killed the
    last one; within one life the draw is reproducible; the crash rate is the profile's."""
    rate = 0.2
    profile = FaultProfile("crashy", {"crash": rate}, Latency("fixed", 0.0))
    requests = [request(task_id=f"t{i}") for i in range(2_000)]

    async def crashed_in(life: int) -> set[str]:
        died: list[str] = []
        sim = backend(profile, crash=died.append, life=life)
        for req in requests:
            with contextlib.suppress(SimulatedCrash):
                await sim.complete(req)
        return {reason.split()[2] for reason in died}

    first, again, next_life = await crashed_in(1), await crashed_in(1), await crashed_in(2)
    assert first == again
    assert abs(len(first) / len(requests) - rate) < 0.04
    # Independent lives: the overlap is about rate**2 of the requests, not all of first.
    assert len(first & next_life) < 0.5 * len(first)


async def test_a_juror_named_in_wrong_steps_rejects_the_one_right_answer_on_demand() -> None:
    right = (Candidate(candidate_id="answer", content="def solve(): return 2"),)
    sim = backend(wrong_steps=["t/answer/b*/reviewer-[12]"])
    verdicts = {}
    for juror in ("reviewer-0", "reviewer-1", "reviewer-2"):
        req = request(
            "reviewer", step_id=f"t/answer/b1/{juror}", candidates=right, output_model=ReviewVerdict
        )
        verdicts[juror] = (await sim.complete(req)).output(ReviewVerdict).kind
    assert verdicts == {"reviewer-0": "choice", "reviewer-1": "reject", "reviewer-2": "reject"}
    # The next round's proposal (t/answer-2) is judged honestly again.
    later = request(
        "reviewer", step_id="t/answer-2/b1/reviewer-1", candidates=right, output_model=ReviewVerdict
    )
    assert (await sim.complete(later)).output(ReviewVerdict).kind == "choice"


def test_wrong_steps_come_from_a_comma_separated_setting() -> None:
    from synod.llm.settings import LLMSettings

    settings = LLMSettings(sim_wrong_steps="a/answer/b*/r-1, b/*")  # type: ignore[arg-type]
    assert settings.sim_wrong_steps == ("a/answer/b*/r-1", "b/*")
