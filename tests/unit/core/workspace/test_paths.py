"""One path rule: every file a plan accepts is one the workspace stores under the same name."""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from synod.core.plan.dag import Plan, PlanError
from synod.core.workspace import Applied, FileWrite, VersionVector, Workspace, normalise_path
from synod.wire.messages import PlanStep

# Random text, and text built from the characters that matter to a path rule.
PATHS = st.text(max_size=30) | st.text(alphabet="ab./\\\x00 ~:", max_size=12)


def _plan_accepts(path: str) -> bool:
    try:
        Plan((PlanStep(step_id="s1", role="coder", title="t", files=[path]),))
    except PlanError:
        return False
    return True


@given(path=PATHS)
@example(path="a\x00b.py")  # the plan used to accept a NUL the workspace refused
@example(path="./src//a.py")
@example(path="src/../../x")
def test_a_path_the_plan_accepts_is_one_the_workspace_accepts(path: str) -> None:
    if not _plan_accepts(path):
        assert normalise_path(path) is None
        return
    space = Workspace("eventual")
    outcome = space.apply(
        FileWrite(
            path=path,
            content="x",
            writer="w",
            base_version=VersionVector(),
            step_id="s1",
            write_id="w1",
        ),
        0.0,
    )
    assert isinstance(outcome, Applied)
    assert outcome.path == normalise_path(path)


def test_a_nul_in_a_path_is_refused_by_both() -> None:
    assert not _plan_accepts("a\x00b.py")
    assert normalise_path("a\x00b.py") is None
