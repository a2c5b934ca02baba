"""Write docs/benchmarks.md and docs/bench/*.png from the JSON of the last bench/report.py run.

Every number in the document is read from docs/bench/<name>.json here; none is
typed by hand. Runs in the bench venv (.cache/bench-venv, matplotlib pinned in
the Makefile), which has no synod: it reads JSON only. `make bench-render`.
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "docs" / "bench"
DOC = ROOT / "docs" / "benchmarks.md"


def _plt() -> Any:
    matplotlib = importlib.import_module("matplotlib")
    matplotlib.use("Agg")
    # Reproducible PNGs: no timestamp or software version in the metadata.
    matplotlib.rcParams["svg.hashsalt"] = "synod"
    return importlib.import_module("matplotlib.pyplot")


def _save(fig: Any, name: str) -> str:
    fig.tight_layout()
    fig.savefig(BENCH / name, dpi=90, metadata={"Software": None})
    _plt().close(fig)
    return f"![{name}](bench/{name})"


def _describe(machine: dict[str, Any]) -> str:
    libs = ", ".join(f"{k} {v}" for k, v in sorted(machine.get("libraries", {}).items()))
    kafka = f", Kafka {machine['kafka']}" if machine.get("kafka") else ""
    return (
        f"{machine.get('cores')} cores ({machine.get('cpu')}), {machine.get('memory_gb')} GiB, "
        f"Python {machine.get('python')}{kafka}; {libs}"
    )


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    def cell(v: Any) -> str:
        if v is None:
            return "-"
        if isinstance(v, float):
            return f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"
        return str(v)

    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(out)


# ---------------------------------------------------------------- per benchmark


def transport(d: dict[str, Any]) -> str:
    t = d["throughput"]
    rows = [
        ["pipelined (ours), msgs/s", t["ours"]["rate_per_s"]],
        ["one at a time, msgs/s", t["sequential"]["rate_per_s"]],
        ["ratio", t["ratio"]],
        ["share of ideal", t["share_of_ideal"]],
        ["peak RSS MiB", d.get("peak_rss_mib")],
    ]
    lat = d["latency"]
    rates = sorted(lat, key=int)
    lrows = [
        [
            r,
            lat[r]["raw_p50_ms"],
            lat[r]["raw_p99_ms"],
            lat[r]["ours_p50_ms"],
            lat[r]["ours_p99_ms"],
            lat[r]["ours_rc_p50_ms"],
            lat[r]["ours_rc_p99_ms"],
        ]
        for r in rates
    ]
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.2))
    width = 0.25
    for i, (key, label) in enumerate(
        [("raw", "raw aiokafka"), ("ours", "synod"), ("ours_rc", "synod + read-committed")]
    ):
        xs = [j + (i - 1) * width for j in range(len(rates))]
        ax.bar(xs, [lat[r][f"{key}_p99_ms"] for r in rates], width, label=f"{label} p99")
        ax.scatter(xs, [lat[r][f"{key}_p50_ms"] for r in rates], color="black", s=12, zorder=3)
    ax.set_xticks(range(len(rates)), [f"{r} msgs/s" for r in rates])
    ax.set_ylabel("latency ms (bar p99, dot p50)")
    ax.legend(fontsize=7)
    return "\n\n".join(
        [
            _table(["throughput", "value"], rows),
            _table(
                [
                    "offered rate",
                    "raw p50",
                    "raw p99",
                    "synod p50",
                    "synod p99",
                    "rc p50",
                    "rc p99",
                ],
                lrows,
            ),
            _save(fig, "transport.png"),
        ]
    )


def consensus(d: dict[str, Any]) -> str:
    cells = [c for c in d["cells"] if c["model"] == "independent"]
    policies = ["single", "majority", "exact", "adaptive"]
    rows = [
        [c["p"], c["n"], *(c[p]["accuracy"] for p in policies), *(c[p]["calls"] for p in policies)]
        for c in cells
    ]
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2))
    for p in sorted({c["p"] for c in cells}):
        sub = sorted((c for c in cells if c["p"] == p), key=lambda c: c["n"])
        ns = [c["n"] for c in sub]
        axes[0].plot(ns, [c["majority"]["calls"] for c in sub], "--", label=f"majority, p={p}")
        axes[0].plot(ns, [c["adaptive"]["calls"] for c in sub], "-o", label=f"adaptive, p={p}")
        axes[1].plot(ns, [c["adaptive"]["accuracy"] for c in sub], "-o", label=f"adaptive, p={p}")
    axes[0].set(xlabel="electorate n", ylabel="LLM calls per proposal")
    axes[1].set(xlabel="electorate n", ylabel="accuracy")
    axes[0].legend(fontsize=6)
    axes[1].legend(fontsize=6)
    s = d["summary"]["adaptive_consistency_comparison"]
    return "\n\n".join(
        [
            "Independent jurors (error rate p, electorate n); accuracy and calls per policy. "
            f"{d['params']['proposals']} proposals per cell. Adaptive saves "
            f"{s['savings_at_31_mean']:.2f}x calls at n=31 (mean), accuracy drop vs plurality "
            f"{s['accuracy_drop_vs_plurality_pp_mean']:.2f} pp (mean).",
            _table(
                ["p", "n", *(f"{p} acc" for p in policies), *(f"{p} calls" for p in policies)],
                rows,
            ),
            _save(fig, "consensus.png"),
        ]
    )


def blackboard(d: dict[str, Any]) -> str:
    keys = [
        "latency_p50_s",
        "latency_p99_s",
        "calls_per_task",
        "rework_calls_per_task",
        "stale_steps_per_task",
        "wrong_reads_per_task",
        "right",
        "right_without_reconcile",
    ]
    rows = [[k, *(d["modes"][m][k] for m in d["modes"])] for k in keys]
    if d["benchmark"] == "blackboard-kafka":
        head = (
            f"Through the services (real broker, every service a process, sim model latency "
            f"`{d['latency']}`): {d['tasks_per_mode']} tasks per mode, {d['in_flight']} in "
            "flight; latency is the outcome's broker timestamp minus the submission's; "
            "the other columns are folded from each task's log. `synod check` over the "
            f"run's log: ok={d['check']['ok']}, {d['check']['violations']} violations, "
            f"{d['check']['facts_read']} fact reads checked."
        )
    else:
        head = f"In virtual time: {d['tasks_per_mode']} tasks per mode, seed {d['seed']}."
    return head + "\n\n" + _table(["", *d["modes"]], rows)


def teams(d: dict[str, Any]) -> str:
    rows = [[r["mode"], r["p"], *r["speedup"], *r["paper"]] for r in d["paper_table"]]
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.2))
    for r in d["paper_table"]:
        if r["p"] == max(x["p"] for x in d["paper_table"]):
            ax.plot(range(2, 2 + len(r["speedup"])), r["speedup"], "-o", label=r["mode"])
    top = max(r["p"] for r in d["paper_table"])
    paper = next(r["paper"] for r in d["paper_table"] if r["p"] == top)
    ax.plot(range(2, 2 + len(paper)), paper, "k--", label="paper")
    ax.set(xlabel="agents", ylabel="speedup", title=f"parallel fraction p = {top}")
    ax.legend(fontsize=7)
    n = len(rows[0]) - 2
    heads = [f"n={i + 2}" for i in range(n // 2)]
    return "\n\n".join(
        [
            f"The paper's projects, simulated teams, {d['repeats']} seeded runs per cell; "
            "speedup over one agent, ours beside the paper's.",
            _table(["mode", "p", *heads, *(f"paper {h}" for h in heads)], rows),
            _save(fig, "teams.png"),
        ]
    )


def recovery(d: dict[str, Any]) -> str:
    rows = [
        [
            s["history_records"],
            s["replay_s"],
            s["snapshot_restore_s"],
            s["snapshot_tail_records"],
            s["snapshot_bytes"],
            s["same_state"],
        ]
        for s in d["sizes"]
    ]
    return _table(
        ["history records", "replay s", "snapshot + tail s", "tail records", "snapshot B", "same"],
        rows,
    )


def pipeline(d: dict[str, Any]) -> str:
    rows = [
        [
            r["clocks"],
            r["sim_latency"],
            r["tasks"],
            r["completed"],
            r["p50_s"],
            r["p99_s"],
            r["tasks_per_s"],
        ]
        for r in d["runs"]
    ]
    return f"Services: {d['services']}.\n\n" + _table(
        ["clocks", "model latency", "tasks", "completed", "p50 s", "p99 s", "tasks/s"], rows
    )


HOPS = [
    "worker_to_log",
    "log_to_fold",
    "fold_to_request_logged",
    "logged_to_forwarded",
    "forwarded_to_worker_start",
]


def dispatch(d: dict[str, Any]) -> str:
    levels = list(d["in_flight"])
    rows = [
        [
            lvl,
            d["in_flight"][lvl]["samples"],
            *(d["in_flight"][lvl][h]["p50_ms"] for h in HOPS),
            d["in_flight"][lvl]["total"]["p50_ms"],
            d["in_flight"][lvl]["total"]["p99_ms"],
        ]
        for lvl in levels
    ]
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.2))
    bottom = [0.0] * len(levels)
    for h in HOPS:
        vals = [d["in_flight"][lvl][h]["p50_ms"] for lvl in levels]
        ax.bar(levels, vals, bottom=bottom, label=h.replace("_", " "))
        bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
    ax.set(xlabel="tasks in flight", ylabel="p50 ms per hop (stacked)")
    ax.legend(fontsize=6)
    parts = [
        _table(
            [
                "in flight",
                "samples",
                *(h.replace("_", " ") for h in HOPS),
                "total p50",
                "total p99",
            ],
            rows,
        ),
        _save(fig, "dispatch.png"),
    ]
    if d.get("shapes"):
        shape_rows = [
            [
                s.get("project"),
                s.get("mode"),
                s.get("makespan_s"),
                s.get("vs_clairvoyant"),
                s.get("speedup"),
                s.get("amdahl_speedup"),
            ]
            for s in d["shapes"]
        ]
        parts.insert(
            1,
            _table(
                ["shape", "mode", "makespan s", "/ clairvoyant", "speedup", "Amdahl"], shape_rows
            ),
        )
    return "\n\n".join(parts)


CAP_COLUMNS = [
    ("scenario", "scenario"),
    ("mode", "mode"),
    ("tasks", "tasks"),
    ("done_during", "completed during fault"),
    ("p50_s", "p50 s"),
    ("p99_s", "p99 s"),
    ("provisional", "provisional"),
    ("confirmed", "confirmed"),
    ("overturned", "overturned"),
    ("failed", "failed"),
    ("wrong", "wrong/lost/dup"),
    ("violations", "check violations"),
]


def cap(d: dict[str, Any]) -> str:
    rows = [[r.get(k) for k, _ in CAP_COLUMNS] for r in d["rows"]]
    return _table([h for _, h in CAP_COLUMNS], rows)


def peers(d: dict[str, Any]) -> str:
    systems = d["systems"]
    rows = []
    for name, r in systems.items():
        rss = ", ".join(f"{k} {v}" for k, v in r["rss_mib"].items())
        k = r["sigkill"]
        rows.append(
            [
                name,
                r["rtt_p50_ms"],
                r["rtt_p99_ms"],
                r["messages_per_s"],
                rss,
                f"{k['lost']} / {k['duplicates']} / {k.get('hung', 0)} of {k['stream_n']}",
            ]
        )
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2))
    names = list(systems)
    axes[0].bar(names, [systems[n]["rtt_p99_ms"] for n in names], label="p99")
    axes[0].bar(names, [systems[n]["rtt_p50_ms"] for n in names], label="p50")
    axes[0].set(ylabel="round trip ms")
    axes[0].set_yscale("log")
    axes[0].legend(fontsize=7)
    axes[1].bar(names, [systems[n]["messages_per_s"] for n in names])
    axes[1].set(ylabel="messages/s delivered (burst)")
    for ax in axes:
        ax.tick_params(axis="x", labelrotation=30, labelsize=7)
    versions = "; ".join(
        f"{n}: " + ", ".join(f"{k} {v}" for k, v in systems[n]["versions"].items())
        for n in names
        if systems[n].get("versions")
    )
    return "\n\n".join(
        [
            _table(
                [
                    "system",
                    "rtt p50 ms",
                    "rtt p99 ms",
                    "msgs/s",
                    "RSS MiB per process",
                    "SIGKILL: lost / duplicates / hung",
                ],
                rows,
            ),
            f"Peers' versions: {versions}." if versions else "",
            _save(fig, "peers.png"),
        ]
    )


def sweep(d: dict[str, Any]) -> str:
    rows = [
        [
            r["tasks"],
            r["every_task_ms"],
            r["wakes_none_due_ms"],
            r["wakes_1pct_due_ms"],
            r["wakes_all_due_ms"],
        ]
        for r in d["runs"]
    ]
    return "\n".join(
        [
            f"CPU ms of one deadline sweep of the planner (median of {d['rounds']}): every "
            "task stepped (before the wake schedule) vs only the tasks due.",
            "",
            _table(["tasks", "every task", "none due", "1% due", "all due"], rows),
        ]
    )


def offsets(d: dict[str, Any]) -> str:
    rows = [
        [r["in_flight"], r["us_per_finish"], r.get("us_per_finish_in_order")] for r in d["rows"]
    ]
    return "\n".join(
        [
            "CPU µs of the consumer's offset bookkeeping per record finished, by records "
            "in flight on one partition, the lowest finished last (one slow record holds "
            "the commit point), the others in a random order or in order. Random at 20,000 "
            "is past the consumer's pause threshold: the metadata is encoded exactly.",
            "",
            _table(["in flight", "µs per finish, random", "µs per finish, in order"], rows),
        ]
    )


SECTIONS: list[tuple[str, str, Callable[[dict[str, Any]], str], str]] = [
    ("peers", "Peers: Synod beside aiokafka, faust and AutoGen", peers, "bench/peers/README.md"),
    ("transport", "Transport: pipelined publishing and latency", transport, "bench/transport.py"),
    ("pipeline", "Pipeline: every service a process", pipeline, "bench/pipeline.py"),
    ("dispatch", "Dispatch: a completion to its dependents' start", dispatch, "docs/dispatch.md"),
    ("consensus", "Consensus policies", consensus, "docs/consensus.md"),
    ("teams", "Teams: the paper's projects", teams, "bench/teams.py"),
    ("recovery", "Recovery: replay vs snapshot", recovery, "bench/recovery.py"),
    ("blackboard", "Blackboard: strong vs eventual facts", blackboard, "docs/blackboard.md"),
    (
        "blackboard-kafka",
        "Blackboard through the services: strong vs eventual",
        blackboard,
        "bench/blackboard_kafka.py",
    ),
    ("cap", "CAP under real partitions", cap, "docs/cap.md"),
    ("sweep", "Planner sweep: the wake schedule", sweep, "docs/capacity.md"),
    ("offsets", "Consumer offsets: cost per finished record", offsets, "docs/capacity.md"),
]


def main() -> int:
    runs = json.loads((BENCH / "runs.json").read_text())
    report = runs.get("report", {})
    total = sum(float(e["seconds"]) for e in runs.get("benchmarks", {}).values())
    out = [
        "# Benchmarks",
        "",
        "Written by `make bench-report` (bench/report.py runs every benchmark with "
        "`--json` into docs/bench/, then bench/render.py writes this page and the plots "
        "from that JSON; `make bench-render` redoes only the second part). "
        "No number here is typed by hand. The benchmarks assert nothing about time; "
        "on a shared machine the absolute numbers move between runs, the comparisons "
        "within one run are what to read.",
        "",
    ]
    if report:
        out += [
            f"Machine: {_describe(report['machine'])}.",
            "",
            f"The runs took {total / 60:.1f} min in all; load average (1/5/15 min) "
            f"{report['load_before']} before the last `bench/report.py` invocation and "
            f"{report['load_after']} after it (the machine was shared with other work; each "
            "section gives the 1-minute load at its run's end).",
            "",
        ]
    for name, title, render, more in SECTIONS:
        path = BENCH / f"{name}.json"
        entry = runs.get("benchmarks", {}).get(name)
        out.append(f"## {title}")
        out.append("")
        if not path.exists() or entry is None:
            out += ["Not run in this report.", ""]
            continue
        doc = json.loads(path.read_text())
        load = doc.get("machine", {}).get("load_avg_1m")
        out += [
            f"    {entry['command']}",
            "",
            f"{entry['seconds']:.0f} s"
            + (f", load average {load} at its end" if load else "")
            + f". More: [{more}](../{more}).",
            "",
        ]
        if not entry["ok"]:
            out += [f"This run failed: `{entry.get('error')}`; the figures below are older.", ""]
        out += [render(doc), ""]
    DOC.write_text("\n".join(out).rstrip() + "\n")
    print(f"wrote {DOC.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
