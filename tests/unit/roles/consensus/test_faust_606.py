"""Why the consensus service does not run on faust-streaming's agent concurrency.

faust-streaming issue 606 (open; PR 707 not merged): with an agent's
`concurrency` > 1, the consumer commits an offset past a message that is still
being processed when that message sits right at the committed head, so a
SIGKILL then loses it. This drives the installed faust's own offset logic
(`Consumer._new_offset`) through that state. It is expected to fail: if it
starts passing, faust has fixed 606 and docs/adr/0003 may be revisited.
"""

from __future__ import annotations

from collections import defaultdict
from types import SimpleNamespace

import pytest

faust_consumer = pytest.importorskip("faust.transport.consumer")
intervaltree = pytest.importorskip("intervaltree")


@pytest.mark.xfail(
    strict=True, reason="faust-streaming issue 606: commits past an in-flight message"
)
def test_faust_never_commits_past_a_message_still_in_flight() -> None:
    tp = ("synod.votes", 0)
    # Offset 2585 is the committed head and still being processed (a slow handler
    # under concurrency 2); 2586-2589 finished and were acked meanwhile.
    state = SimpleNamespace(
        _acked=defaultdict(list, {tp: [2586, 2587, 2588, 2589]}),
        _acked_index=defaultdict(set, {tp: {2586, 2587, 2588, 2589}}),
        _gap=defaultdict(intervaltree.IntervalTree),
        _committed_offset=defaultdict(lambda: None, {tp: 2585}),
    )
    offset = faust_consumer.Consumer._new_offset(state, tp)
    # Committing 2590 would tell a successor that 2585 is done.
    assert offset is None or offset <= 2585, f"faust would commit {offset}"
