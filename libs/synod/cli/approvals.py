"""`synod approvals`: the tasks waiting for a person, and the person's answer.

Through the gateway's `/v1/escalations` (docs/gateway.md), so an answer is
checked and recorded under the caller's token's principal, the same way from
the CLI, HTTP and the console:

    synod approvals list [--state open|answered|closed|all] [--task T] [--json]
    synod approvals show ID [--json]
    synod approvals approve ID [--candidate C]
    synod approvals reject ID --guidance TEXT
    synod approvals answer ID --action raise_budget --max-tokens N [--max-cost USD]
    synod approvals answer ID --action cancel

`--url` (SYNOD_GATEWAY_URL, default http://127.0.0.1:8080) and `--token`
(SYNOD_API_TOKEN). Exit status 0 on success, 1 when the gateway refused the
answer (already answered, unknown escalation) or could not be reached, 2 for
an answer it found malformed.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer

from synod.cli.output import JsonOption, emit
from synod.client.escalations import Escalations, Reply

app = typer.Typer(help="escalated tasks: list them, approve, reject with guidance, answer")

UrlOption = Annotated[
    str | None,
    typer.Option("--url", help="the gateway (default: SYNOD_GATEWAY_URL or 127.0.0.1:8080)"),
]
TokenOption = Annotated[
    str | None, typer.Option("--token", help="bearer token (default: SYNOD_API_TOKEN)")
]


def _finish(reply: Reply, as_json: bool, text: str) -> None:
    if as_json:
        emit(reply.doc)
    if reply.ok:
        if not as_json:
            print(text)
        return
    message = reply.message
    if reply.status == 404:
        message += " (`synod approvals list --state all` lists them)"
    print(f"error: {message}", file=sys.stderr)
    raise typer.Exit(code=2 if reply.status in (400, 422) else 1)


@app.command("list")
def list_command(
    state: Annotated[str, typer.Option(help="open, answered, closed or all")] = "open",
    task: Annotated[str | None, typer.Option("--task", help="only this task's")] = None,
    as_json: JsonOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """The escalations in one state (open: waiting for an answer)."""
    reply = Escalations(url, token).list(state, task)
    doc = reply.doc if isinstance(reply.doc, dict) else {}
    rows = [
        f"{e['escalation_id']}  {e['state']:<8} {e['kind']:<12} {e['reason'][:70]}"
        for e in doc.get("escalations", [])
    ]
    _finish(reply, as_json, "\n".join(rows) or f"no {state} escalations")


@app.command("show")
def show_command(
    escalation_id: Annotated[str, typer.Argument(help="the escalation's id")],
    as_json: JsonOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """One escalation: why, its candidates, its answer."""
    reply = Escalations(url, token).get(escalation_id)
    _finish(reply, as_json, json.dumps(reply.doc, indent=2))


def _answer(url: str | None, token: str | None, eid: str, doc: Any, as_json: bool) -> None:
    reply = Escalations(url, token).answer(
        eid,
        doc["action"],
        candidate_id=doc.get("candidate_id"),
        guidance=doc.get("guidance"),
        budget=doc.get("budget"),
    )
    recorded = reply.doc.get("recorded") if isinstance(reply.doc, dict) else None
    done = "recorded on the task's log" if recorded else "sent (the planner logs it when it runs)"
    _finish(reply, as_json, f"{doc['action']} {eid}: {done}")


@app.command("approve")
def approve_command(
    escalation_id: Annotated[str, typer.Argument(help="the escalation's id")],
    candidate: Annotated[
        str, typer.Option("--candidate", help="the candidate to approve")
    ] = "answer",
    as_json: JsonOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Approve one candidate: the task completes with it, naming you."""
    _answer(url, token, escalation_id, {"action": "approve", "candidate_id": candidate}, as_json)


@app.command("reject")
def reject_command(
    escalation_id: Annotated[str, typer.Argument(help="the escalation's id")],
    guidance: Annotated[str, typer.Option("--guidance", help="what to change")],
    as_json: JsonOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Reject with guidance: one revision round whose prompt carries it."""
    _answer(url, token, escalation_id, {"action": "reject", "guidance": guidance}, as_json)


@app.command("answer")
def answer_command(
    escalation_id: Annotated[str, typer.Argument(help="the escalation's id")],
    action: Annotated[
        str, typer.Option("--action", help="approve, reject, raise_budget or cancel")
    ],
    candidate: Annotated[str | None, typer.Option("--candidate")] = None,
    guidance: Annotated[str | None, typer.Option("--guidance")] = None,
    max_tokens: Annotated[int | None, typer.Option("--max-tokens")] = None,
    max_cost: Annotated[float | None, typer.Option("--max-cost")] = None,
    max_calls: Annotated[int | None, typer.Option("--max-calls")] = None,
    on_exhausted: Annotated[str, typer.Option("--on-exhausted")] = "escalate",
    as_json: JsonOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Any answer: approve, reject, raise_budget (with the new limits) or cancel."""
    doc: dict[str, Any] = {"action": action}
    if candidate is not None:
        doc["candidate_id"] = candidate
    if guidance is not None:
        doc["guidance"] = guidance
    if action == "raise_budget":
        doc["budget"] = {
            "max_tokens": max_tokens,
            "max_cost_usd": max_cost,
            "max_model_calls": max_calls,
            "on_exhausted": on_exhausted,
        }
    _answer(url, token, escalation_id, doc, as_json)
