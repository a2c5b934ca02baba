"""Lost updates: impossible in strong mode, never silent in eventual mode.

Several writers each append lines to a few files by read-modify-write, and
their steps interleave in every way hypothesis can think of, with time
passing so that leases expire under them. A line is an acknowledged
increment: if its write was accepted, it must be in the final files, or (in
eventual mode) a recorded conflict must name a discarded version that held it.

The same harness runs a naive last-writer-wins store, which must fail the
same check: that is the proof the check can catch a lost update.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Literal

from hypothesis import Phase, find, given, settings
from hypothesis import strategies as st

from synod.core.workspace import (
    Applied,
    FileView,
    FileWrite,
    Lease,
    Rejected,
    Resolve,
    VersionVector,
    Workspace,
)

Mode = Literal["strong", "eventual", "eventual+vote", "lww"]
TTL = 3.0
RESOLVER = "judge"
DTS = (0.0, 0.5, 1.0, 4.0)  # time that may pass between two steps


@dataclass(frozen=True)
class Scenario:
    scripts: tuple[tuple[str, ...], ...]  # per writer, the file of each append
    schedule: tuple[tuple[int, float], ...]  # (actor, time that passes before its step)


@dataclass(frozen=True)
class Ack:
    writer: str
    path: str
    line: str
    dot: int  # the writer's counter in the accepted version; 0 in the LWW store


@dataclass
class Writer:
    name: str
    script: tuple[str, ...]
    op: int = 0
    phase: str = "begin"
    token: int | None = None
    base: VersionVector = field(default_factory=VersionVector)
    text: str = ""
    tries: int = 0


class LastWriterWins:
    """The baseline: a plain key-value store; a write replaces whatever is there."""

    def __init__(self) -> None:
        self.files: dict[str, str] = {}


@dataclass
class Run:
    acks: list[Ack]
    final: dict[str, tuple[str, ...]]  # path -> contents of every current version
    workspace: Workspace | None


def merge(contents: tuple[str, ...]) -> str:
    """An honest reader: keeps every line of every sibling it read."""
    lines = dict.fromkeys(line for c in contents for line in c.splitlines())
    return "".join(f"{line}\n" for line in lines)


def run(mode: Mode, scenario: Scenario) -> Run:
    writers = [Writer(f"w{i}", script) for i, script in enumerate(scenario.scripts)]
    ws = Workspace("strong" if mode == "strong" else "eventual")
    lww = LastWriterWins()
    acks: list[Ack] = []
    judge = Judge()
    now = 0.0
    for actor, dt in scenario.schedule:
        now += dt
        if actor >= len(writers):
            if mode == "eventual+vote":
                judge.step(ws, now)
            continue
        w = writers[actor]
        if w.op >= len(w.script):
            continue
        path, line = w.script[w.op], f"{w.name}.{w.op}"
        if mode == "lww":
            if w.phase in ("begin", "read"):
                w.text, w.phase = lww.files.get(path, ""), "write"
            else:
                lww.files[path] = w.text + line + "\n"
                acks.append(Ack(w.name, path, line, 0))
                w.op, w.phase = w.op + 1, "begin"
            continue
        if mode == "strong" and w.phase == "begin":
            got = ws.leases.acquire(path, w.name, now, TTL)
            if isinstance(got, Lease):
                w.token, w.phase = got.token, "read"
            continue
        if w.phase in ("begin", "read"):
            view = ws.read(path)
            w.base, w.phase = view.version, "write"
            w.text = (view.content or "") if mode == "strong" else merge(view.contents)
            continue
        if w.phase == "write":
            wid = f"{w.name}/{w.op}/{w.tries}"
            w.tries += 1
            text = w.text + line + "\n"
            out = ws.apply(FileWrite(path, text, w.name, w.base, w.name, wid, w.token), now)
            if isinstance(out, Rejected):
                assert mode == "strong", out
                w.phase = "begin"
                continue
            assert mode != "strong" or isinstance(out, Applied), out
            acks.append(Ack(w.name, path, line, out.version.get(w.name)))
            w.phase = "release" if mode == "strong" else "next"
        if w.phase == "release":
            assert w.token is not None
            ws.leases.release(path, w.name, w.token)
        w.op, w.phase, w.token = w.op + 1, "begin", None
    if mode == "lww":
        return Run(acks, {p: (c,) for p, c in lww.files.items()}, None)
    return Run(acks, {p: ws.read(p).contents for p in ws.paths()}, ws)


@dataclass
class Judge:
    """A resolver that looks at a conflict, then (a step later) keeps the first sibling."""

    view: FileView | None = None
    votes: int = 0

    def step(self, ws: Workspace, now: float) -> None:
        if self.view is None:
            open_ = ws.conflicts(open_only=True)
            if open_:
                self.view = ws.read(open_[0].path)
            return
        pick, view = self.view.siblings[0], self.view
        self.votes += 1
        vote = Resolve(
            view.path, pick.content, RESOLVER, view.version, f"r{self.votes}", pick.write_id
        )
        ws.apply(vote, now)  # may be refused if a writer merged meanwhile; that is fine
        self.view = None


def silently_lost(r: Run) -> list[Ack]:
    """Accepted lines in no current version, and not in a version a recorded vote discarded."""
    lost = []
    for ack in r.acks:
        if any(ack.line in c.splitlines() for c in r.final.get(ack.path, ())):
            continue
        if r.workspace is not None and any(
            s.write_id in c.discarded and s.version.get(ack.writer) >= ack.dot
            for c in r.workspace.conflicts()
            if c.path == ack.path
            for s in c.siblings
        ):
            continue
        lost.append(ack)
    return lost


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    n_writers = draw(st.integers(2, 4))
    files = ["a.py", "b.py"][: draw(st.integers(1, 2))]
    scripts = tuple(
        tuple(draw(st.lists(st.sampled_from(files), min_size=1, max_size=4)))
        for _ in range(n_writers)
    )
    # One byte per step (who moves, how much time passes) is far cheaper for
    # hypothesis to generate than a list of tuples, and shrinks just as well.
    raw = draw(st.binary(max_size=120))
    schedule = tuple((b % (n_writers + 1), DTS[b // 64]) for b in raw)
    return Scenario(scripts, schedule)


def random_scenario(rng: random.Random) -> Scenario:
    n = rng.randint(2, 4)
    scripts = tuple(
        tuple(rng.choice(["a.py", "b.py"]) for _ in range(rng.randint(1, 4))) for _ in range(n)
    )
    schedule = tuple((rng.randint(0, n), rng.choice(DTS)) for _ in range(80))
    return Scenario(scripts, schedule)


# ---------------------------------------------------------------- properties


@settings(max_examples=300, deadline=None, derandomize=True)
@given(scenarios())
def test_strong_mode_loses_no_acknowledged_write(scenario: Scenario) -> None:
    r = run("strong", scenario)
    assert silently_lost(r) == []
    assert r.workspace is not None
    assert r.workspace.conflicts() == ()
    # Stronger: each file holds exactly its accepted lines, in the order accepted.
    for path, (content,) in r.final.items():
        assert content.splitlines() == [a.line for a in r.acks if a.path == path]


@settings(max_examples=300, deadline=None, derandomize=True)
@given(scenarios())
def test_eventual_mode_keeps_every_write_among_the_siblings(scenario: Scenario) -> None:
    r = run("eventual", scenario)
    assert silently_lost(r) == []
    # With honest readers and no votes, nothing is lost at all, reported or not.
    for ack in r.acks:
        assert any(ack.line in c.splitlines() for c in r.final[ack.path])


@settings(max_examples=300, deadline=None, derandomize=True)
@given(scenarios())
def test_eventual_mode_with_votes_never_loses_a_write_silently(scenario: Scenario) -> None:
    r = run("eventual+vote", scenario)
    assert silently_lost(r) == []
    ws = r.workspace
    assert ws is not None
    if ws.stats.concurrent_writes:
        assert ws.conflicts()
    # A final merge of whatever is still open yields one consistent workspace.
    for i, record in enumerate(ws.conflicts(open_only=True)):
        view = ws.read(record.path)
        ws.apply(Resolve(view.path, merge(view.contents), RESOLVER, view.version, f"m{i}"), 0.0)
    assert set(ws.materialise()) == set(ws.paths())


# ---------------------------------------------------------------- the check can fail


def test_the_check_catches_the_classic_lost_update_in_lww() -> None:
    # w0 reads, w1 reads, w0 writes, w1 writes: w0's line is gone.
    scenario = Scenario((("a.py",), ("a.py",)), ((0, 0), (1, 0), (0, 0), (1, 0)))
    r = run("lww", scenario)
    assert [a.line for a in r.acks] == ["w0.0", "w1.0"]
    assert silently_lost(r) == [Ack("w0", "a.py", "w0.0", 0)]
    # The same interleaving under the workspace: rejected and retried, or kept as siblings.
    assert silently_lost(run("strong", scenario)) == []
    eventual = run("eventual", scenario)
    assert eventual.final["a.py"] == ("w0.0\n", "w1.0\n")
    assert eventual.workspace is not None
    assert eventual.workspace.stats.concurrent_writes == 1


def test_hypothesis_finds_a_lost_update_in_lww_with_the_same_strategy() -> None:
    found = find(
        scenarios(),
        lambda s: bool(silently_lost(run("lww", s))),
        # No shrinking: any counterexample proves the point, and shrinking takes seconds.
        settings=settings(
            max_examples=2000, database=None, derandomize=True, phases=[Phase.generate]
        ),
    )
    assert silently_lost(run("lww", found))
    assert silently_lost(run("strong", found)) == []
    assert silently_lost(run("eventual+vote", found)) == []


def test_on_fixed_random_interleavings_only_lww_loses_writes() -> None:
    rng = random.Random(20260312)
    counts = {"lww": 0, "strong": 0, "eventual": 0, "eventual+vote": 0}
    acked = {"strong": 0, "eventual": 0}
    votes_discarded = 0
    for _ in range(200):
        scenario = random_scenario(rng)
        for mode in counts:
            r = run(mode, scenario)  # type: ignore[arg-type]
            counts[mode] += bool(silently_lost(r))
            if mode in acked:
                acked[mode] += len(r.acks)
            if mode == "eventual+vote" and r.workspace is not None:
                votes_discarded += sum(len(c.discarded) for c in r.workspace.conflicts())
    assert counts["lww"] > 20
    assert counts["strong"] == counts["eventual"] == counts["eventual+vote"] == 0
    # The runs did real work: many writes accepted, and votes did discard versions.
    assert acked["strong"] > 200
    assert acked["eventual"] > 400
    assert votes_discarded > 0
