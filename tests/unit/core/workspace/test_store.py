"""The workspace store: strong mode rejects, eventual mode keeps siblings, nothing vanishes."""

from __future__ import annotations

import pytest

from synod.core.workspace import (
    Applied,
    Conflict,
    FileWrite,
    Lease,
    Rejected,
    Resolve,
    UnresolvedConflictError,
    VersionVector,
    Workspace,
    normalise_path,
)

VV = VersionVector.of
EMPTY = VersionVector()


def write(
    path: str, content: str, writer: str, base: VersionVector, wid: str, token: int | None = None
) -> FileWrite:
    return FileWrite(
        path, content, writer, base, step_id=f"step-{writer}", write_id=wid, lease_token=token
    )


def lease(ws: Workspace, path: str, holder: str, now: float, ttl: float = 10) -> int:
    got = ws.leases.acquire(path, holder, now, ttl)
    assert isinstance(got, Lease)
    return got.token


# ---------------------------------------------------------------- strong


def test_strong_write_needs_the_lease_and_the_current_version() -> None:
    ws = Workspace("strong")
    no_lease = ws.apply(write("a.py", "1", "alice", EMPTY, "w1"), now=0)
    assert no_lease == Rejected("w1", "a.py", "no_lease", EMPTY)
    token = lease(ws, "a.py", "alice", now=0)
    first = ws.apply(write("a.py", "1", "alice", EMPTY, "w2", token), now=1)
    assert first == Applied("w2", "a.py", VV({"alice": 1}), ())
    stale = ws.apply(write("a.py", "2", "alice", EMPTY, "w3", token), now=2)
    assert stale == Rejected("w3", "a.py", "stale_base", VV({"alice": 1}))
    second = ws.apply(write("a.py", "2", "alice", VV({"alice": 1}), "w4", token), now=2)
    assert second == Applied("w4", "a.py", VV({"alice": 2}), ("w2",))
    assert ws.materialise() == {"a.py": "2"}


def test_a_writer_that_outlived_its_lease_is_fenced_off() -> None:
    ws = Workspace("strong")
    old = lease(ws, "f", "alice", now=0, ttl=5)
    base = ws.read("f").version
    expired = ws.apply(write("f", "alice", "alice", base, "a1", old), now=5)
    assert isinstance(expired, Rejected)
    assert expired.reason == "expired"
    new = lease(ws, "f", "bob", now=6)
    assert ws.apply(write("f", "bob", "bob", base, "b1", new), now=6) == Applied(
        "b1", "f", VV({"bob": 1}), ()
    )
    # alice wakes up with her old token and her old read: refused twice over.
    late = ws.apply(write("f", "alice", "alice", base, "a2", old), now=7)
    assert isinstance(late, Rejected)
    assert late.reason == "not_holder"
    assert ws.read("f").content == "bob"


def test_strong_mode_never_has_siblings_and_resolve_has_nothing_to_do() -> None:
    ws = Workspace("strong")
    tok = lease(ws, "f", "a", now=0)
    ws.apply(write("f", "x", "a", EMPTY, "w1", tok), now=0)
    r = ws.apply(Resolve("f", "y", "judge", VV({"a": 1}), "r1"), now=0)
    assert isinstance(r, Rejected)
    assert r.reason == "no_conflict"
    assert ws.conflicts() == ()


# ---------------------------------------------------------------- eventual


def test_concurrent_writes_become_siblings_and_block_materialise() -> None:
    ws = Workspace("eventual")
    ws.apply(write("f", "base", "a", EMPTY, "w0"), now=0)
    seen = ws.read("f").version  # both read {a:1}
    c1 = ws.apply(write("f", "alice", "a", seen, "w1"), now=1)
    c2 = ws.apply(write("f", "bob", "b", seen, "w2"), now=1)
    assert c1 == Applied("w1", "f", VV({"a": 2}), ("w0",))
    assert c2 == Conflict("w2", "f", VV({"a": 1, "b": 1}), "f#1", ("w1", "w2"))
    view = ws.read("f")
    assert view.conflicted
    assert view.contents == ("alice", "bob")
    assert view.version == VV({"a": 2, "b": 1})
    with pytest.raises(UnresolvedConflictError, match="f"):
        ws.materialise()
    with pytest.raises(UnresolvedConflictError):
        _ = view.content
    assert ws.stats.concurrent_writes == 1
    [record] = ws.conflicts(open_only=True)
    assert [s.write_id for s in record.siblings] == ["w1", "w2"]


def test_a_vote_resolves_and_the_loser_is_on_record() -> None:
    ws = Workspace("eventual")
    ws.apply(write("f", "alice", "a", EMPTY, "w1"), now=0)
    ws.apply(write("f", "bob", "b", EMPTY, "w2"), now=0)
    view = ws.read("f")
    out = ws.apply(Resolve("f", "bob", "judge", view.version, "r1", chosen="w2"), now=1)
    assert out == Applied("r1", "f", VV({"a": 1, "b": 1, "judge": 1}), ("w1", "w2"), "f#1")
    [record] = ws.conflicts()
    assert not record.open
    assert (record.discarded, record.chosen, record.resolver) == (("w1",), "w2", "judge")
    assert ws.materialise() == {"f": "bob"}
    assert ws.stats.conflicts_resolved == 1


def test_a_write_based_on_all_siblings_is_a_merge_that_closes_the_conflict() -> None:
    ws = Workspace("eventual")
    ws.apply(write("f", "x", "a", EMPTY, "w1"), now=0)
    ws.apply(write("f", "y", "b", EMPTY, "w2"), now=0)
    out = ws.apply(write("f", "x+y", "c", ws.read("f").version, "w3"), now=0)
    assert isinstance(out, Applied)
    assert out.resolved == "f#1"
    assert ws.conflicts()[0].discarded == ()
    assert ws.read("f").content == "x+y"


def test_a_resolve_cannot_drop_a_write_it_never_saw() -> None:
    ws = Workspace("eventual")
    ws.apply(write("f", "x", "a", EMPTY, "w1"), now=0)
    ws.apply(write("f", "y", "b", EMPTY, "w2"), now=0)
    looked = ws.read("f").version
    ws.apply(write("f", "z", "c", EMPTY, "w3"), now=1)  # arrives while the judge thinks
    out = ws.apply(Resolve("f", "x", "judge", looked, "r1", chosen="w1"), now=2)
    assert isinstance(out, Conflict)
    assert ws.read("f").contents == ("z", "x")
    [record] = ws.conflicts(open_only=True)
    assert record.discarded == ("w2",)
    bad = ws.apply(Resolve("f", "z", "judge", looked, "r2", chosen="w3"), now=3)
    assert isinstance(bad, Rejected)
    assert bad.reason == "unknown_choice"


def test_materialise_at_an_earlier_version() -> None:
    ws = Workspace("eventual")
    ws.apply(write("a", "1", "x", EMPTY, "w1"), now=0)
    ws.apply(write("b", "1", "x", EMPTY, "w2"), now=0)
    ws.apply(write("a", "2", "x", VV({"x": 1}), "w3"), now=0)
    assert ws.version() == 3
    assert ws.materialise(at=0) == {}
    assert ws.materialise(at=1) == {"a": "1"}
    assert ws.materialise(at=2) == {"a": "1", "b": "1"}
    assert ws.materialise() == {"a": "2", "b": "1"}
    assert ws.clock() == VV({"x": 3})
    with pytest.raises(ValueError, match="outside"):
        ws.materialise(at=4)


# ---------------------------------------------------------------- both modes


@pytest.mark.parametrize("mode", ["strong", "eventual"])
def test_a_redelivered_event_returns_the_first_outcome(mode: str) -> None:
    ws = Workspace(mode)  # type: ignore[arg-type]
    tok = lease(ws, "f", "a", now=0)
    first = ws.apply(write("f", "x", "a", EMPTY, "w1", tok), now=0)
    again = ws.apply(write("f", "x", "a", EMPTY, "w1", tok), now=1)
    assert first == again
    assert isinstance(first, Applied)
    assert ws.version() == 1
    assert ws.stats.duplicates == 1


@pytest.mark.parametrize("mode", ["strong", "eventual"])
def test_bases_naming_unknown_writes_and_bad_paths_are_rejected(mode: str) -> None:
    ws = Workspace(mode)  # type: ignore[arg-type]
    tok = lease(ws, "f", "a", now=0)
    forged = ws.apply(write("f", "x", "a", VV({"ghost": 3}), "w1", tok), now=0)
    assert isinstance(forged, Rejected)
    assert forged.reason == "unknown_base"
    for i, bad in enumerate(["", "/etc/passwd", "../up", "a/../../up", "a\\b", "."]):
        out = ws.apply(write(bad, "x", "a", EMPTY, f"bad{i}", tok), now=0)
        assert isinstance(out, Rejected)
        assert out.reason == "invalid_path"
    assert ws.stats.rejected == 7
    assert ws.paths() == ()


def test_paths_are_normalised() -> None:
    assert normalise_path("./src//a.py") == "src/a.py"
    ws = Workspace("eventual")
    ws.apply(write("./src/a.py", "x", "a", EMPTY, "w1"), now=0)
    assert ws.read("src//a.py").content == "x"
    assert ws.read("missing.py").content is None
    assert not ws.read("missing.py").exists
