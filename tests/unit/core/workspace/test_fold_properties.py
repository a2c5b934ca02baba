"""Lost updates over the Kafka fold path, under random interleavings (hypothesis).

A scenario is what the planner and the coders put on synod.workspace for a
chain of steps rewriting each file: per round a step, its attempts (a retry
gets a newer lease, a hedge shares its original's), one winning attempt,
losers that may write late, and stray writers that read an old version. The
records are interleaved in any order the system allows (a grant before the
writes under it, a round's first grant after the previous round's winning
write, a stray after the write it read) and folded with `fold`, as run.py
and the planner do.

- strong: the file holds the last winner's content; every stray and every
  stale attempt is fenced or superseded, never applied; no write is lost.
  Without the winners (folding the topic alone), no applied write is ever
  followed by one with an older lease.
- eventual: nothing is lost; every stray is kept as a sibling, so its file
  is in conflict (detected), and a merge based on all siblings settles it;
  without strays there is no conflict at all (no false conflicts).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from synod.core.workspace import (
    VersionVector,
    WorkspaceRecord,
    fold,
    lost_writes,
    write_id_for,
    writes_for,
    written_version,
)
from synod.wire.messages import FileWritten, LeaseGranted


@dataclass(frozen=True)
class Attempt:
    request: str
    token: int  # the lease it holds (strong)
    new_grant: bool
    writes: bool  # a failed attempt writes nothing


@dataclass(frozen=True)
class Round:
    step: str
    attempts: tuple[Attempt, ...]
    winner: int


@dataclass
class Event:
    record: WorkspaceRecord
    after: tuple[int, ...]  # indices of events that must come first


@dataclass
class Scenario:
    events: list[Event] = field(default_factory=list)
    winners: dict[str, str] = field(default_factory=dict)
    last_content: dict[str, str] = field(default_factory=dict)
    winner_writes: set[str] = field(default_factory=set)
    strays: dict[str, str] = field(default_factory=dict)  # write id -> path


@st.composite
def rounds_of(draw: st.DrawFn, path: str) -> list[Round]:
    rounds, token = [], 0
    for k in range(draw(st.integers(1, 4))):
        attempts: list[Attempt] = []
        for i in range(draw(st.integers(1, 3))):
            new_grant = i == 0 or draw(st.booleans())  # else a hedge of the previous one
            token += new_grant
            attempts.append(Attempt(f"{path}/r{k}/a{i}", token, new_grant, draw(st.booleans())))
        winner = draw(st.integers(0, len(attempts) - 1))
        attempts[winner] = Attempt(
            attempts[winner].request, attempts[winner].token, attempts[winner].new_grant, True
        )
        rounds.append(Round(f"{path}-s{k}", tuple(attempts), winner))
    return rounds


def _write(
    step: str, request: str, path: str, base: VersionVector, token: int | None
) -> FileWritten:
    (w,) = writes_for(
        "t",
        step,
        request,
        "coder",
        [path],
        step,
        f'{{"files": [{{"path": "{path}", "content": "{request}"}}]}}',
        base_versions={path: base.as_dict()},
        lease_tokens={path: token} if token is not None else {},
    )
    return w


@st.composite
def scenarios(draw: st.DrawFn, strong: bool, strays: bool) -> Scenario:
    sc = Scenario()
    for path in ("a.py", "b.py")[: draw(st.integers(1, 2))]:
        base, after_winner = VersionVector(), ()
        versions: list[tuple[VersionVector, tuple[int, ...]]] = [(base, ())]
        for rnd in draw(rounds_of(path)):
            grant_at: dict[int, int] = {}
            previous_grant: tuple[int, ...] = after_winner
            winner_event = -1
            for attempt in rnd.attempts:
                if attempt.new_grant and strong:
                    grant = LeaseGranted(
                        path=path,
                        step_id=rnd.step,
                        token=attempt.token,
                        base_version=base.as_dict(),
                    )
                    sc.events.append(Event(grant, previous_grant))
                    previous_grant = (len(sc.events) - 1,)
                    grant_at[attempt.token] = len(sc.events) - 1
            for i, attempt in enumerate(rnd.attempts):
                if not attempt.writes:
                    continue
                token = attempt.token if strong else None
                needs = (grant_at[attempt.token],) if strong else after_winner
                sc.events.append(Event(_write(rnd.step, attempt.request, path, base, token), needs))
                if i == rnd.winner:
                    winner_event = len(sc.events) - 1
            win = rnd.attempts[rnd.winner]
            sc.winners[rnd.step] = win.request
            sc.winner_writes.add(write_id_for(win.request, path))
            sc.last_content[path] = win.request
            base = written_version(base.as_dict(), win.request, path)
            after_winner = (winner_event,)
            versions.append((base, after_winner))
        if strays:
            for j in range(draw(st.integers(1, 2))):
                seen, needs = draw(st.sampled_from(versions[:-1]))  # an old version
                stray = _write(f"stray-{j}", f"{path}/stray{j}", path, seen, None)
                sc.events.append(Event(stray, needs))
                sc.strays[stray.write_id] = path
    return sc


def interleave(sc: Scenario, rng: random.Random) -> list[WorkspaceRecord]:
    """A random order of the events that respects every `after`."""
    placed: set[int] = set()
    out: list[WorkspaceRecord] = []
    for _ in range(len(sc.events)):
        ready = [
            i
            for i, e in enumerate(sc.events)
            if i not in placed and all(j in placed for j in e.after)
        ]
        pick = rng.choice(ready)
        placed.add(pick)
        out.append(sc.events[pick].record)
    return out


@settings(max_examples=300, deadline=None, derandomize=True)
@given(scenarios(strong=True, strays=True), st.randoms(use_true_random=False))
def test_strong_no_lost_update_and_no_stale_write_applied(sc: Scenario, rng: random.Random) -> None:
    log = interleave(sc, rng)
    done = fold("t", log, winners=sc.winners)
    assert done.mode == "strong"
    assert done.lost == ()
    assert done.conflicts == ()
    assert done.files == sc.last_content
    applied = {w for path in done.steps for w in _applied_ids(done, path)}
    assert applied <= sc.winner_writes  # strays and stale attempts never applied
    rejected = {r.write_id for r in done.rejected}
    superseded = {s.write_id for s in done.superseded}
    for w in log:
        if isinstance(w, FileWritten) and w.write_id not in applied:
            assert w.write_id in rejected | superseded, "a write vanished unseen"

    # Folding the topic alone (no winners): still no lost update, and a file's
    # applied writes only ever move to newer leases.
    alone = fold("t", log)
    assert alone.lost == ()
    assert alone.conflicts == ()
    tokens = {w.write_id: w.lease_token for w in log if isinstance(w, FileWritten)}
    for path in alone.steps:
        order = [tokens[w] or 0 for w in _applied_ids(alone, path)]
        assert order == sorted(order)
    assert not set(sc.strays) & {w for p in alone.steps for w in _applied_ids(alone, p)}


@settings(max_examples=300, deadline=None, derandomize=True)
@given(scenarios(strong=False, strays=True), st.randoms(use_true_random=False))
def test_eventual_every_concurrent_write_is_detected_and_merged(
    sc: Scenario, rng: random.Random
) -> None:
    log = interleave(sc, rng)
    done = fold("t", log, winners=sc.winners)
    assert done.mode == "eventual"
    assert done.lost == ()
    for stray, path in sc.strays.items():
        assert stray in {s.write_id for s in done.conflicted[path]}, "a stray went unseen"
        assert any(stray in {s.write_id for s in c.siblings} for c in done.conflicts)
    # The planner's merge step: based on every sibling, it settles each file.
    merges: list[WorkspaceRecord] = []
    for path, siblings in done.conflicted.items():
        joined = VersionVector()
        for s in siblings:
            joined = joined.join(s.version)
        merges.append(_write(f"merge:{path}", f"merge/{path}", path, joined, None))
    merged = fold("t", log + merges, winners=sc.winners)
    assert merged.conflicted == {}
    assert merged.lost == ()
    assert merged.stats.conflicts_resolved == merged.stats.conflicts_opened >= 1
    assert set(merged.files) == set(sc.last_content)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.booleans(), st.data())
def test_without_strays_there_is_no_conflict_in_either_mode(
    strong: bool, data: st.DataObject
) -> None:
    sc = data.draw(scenarios(strong=strong, strays=False))
    log = interleave(sc, data.draw(st.randoms(use_true_random=False)))
    done = fold("t", log, winners=sc.winners)
    assert done.stats.concurrent_writes == 0
    assert done.conflicts == ()
    assert done.files == sc.last_content
    assert done.lost == ()


def test_the_lost_check_catches_a_store_that_overwrites_blindly() -> None:
    """Proof the property can fail: drop a sibling behind the fold's back."""
    first = _write("s1", "r1", "a.py", VersionVector(), None)
    second = _write("s2", "r2", "a.py", VersionVector(), None)
    done = fold("t", [first, second])
    assert done.lost == ()
    space = done.workspace
    broken = space._files["a.py"]
    broken.siblings = broken.siblings[-1:]
    accepted = {
        w.write_id: ("a.py", written_version({}, r, "a.py"))
        for w, r in ((first, "r1"), (second, "r2"))
    }
    assert lost_writes(space, accepted) == (first.write_id,)


def _applied_ids(done: object, path: str) -> list[str]:
    """Write ids applied to `path`, in log order (from the workspace's history)."""
    space = done.workspace  # type: ignore[attr-defined]
    seen: list[str] = []
    for _, siblings in space._files[path].history:
        for s in siblings:
            if s.write_id not in seen:
                seen.append(s.write_id)
    return seen
