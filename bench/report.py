"""`just bench`: run every benchmark and write `docs/benchmarks.md`.

Each `bench/bench_<name>.py` measures its own baseline in the same run and prints, last, one
line of `key=value` results. This runs them one after another (never in parallel: they would
share the two cores and measure each other), keeps each one's full output, and writes the
ratios, the goals from the issues and the machine they ran on into one page.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULT = re.compile(r"^([a-z0-9_]+=\S+)( [a-z0-9_]+=\S+)*$")

# What each result means and the goal it is held to (from the issues). A key without a goal
# is informative only.
GOALS: dict[str, tuple[str, str]] = {
    "ingest_ratio": (
        ">= 0.8",
        "webhooks/s through ingest (normalizer on) over raw ASGI parse + JetStream ack",
    ),
    "p99_ms": ("<= 10", "ingest p99 latency at half the measured maximum rate"),
    "p999_ms": ("", "ingest p99.9 latency at half the measured maximum rate"),
    "rss_mb": ("<= 150", "ingest resident memory after the run"),
    "crm_replay_ratio": (
        ">= 0.5",
        "replay of all three CRM projections over the production puller with a no-op apply",
    ),
    "events_per_s": ("", "projection replay rate"),
    "e2e_p99_ms": ("<= 100", "webhook to listed by the CRM HTTP API, p99 at 500 msg/s"),
    "outbound_utilization": (">= 0.98", "accepted sends/s over the permitted aggregate rate"),
    "outbound_429": ("== 0", "429 answers from the sandbox during the run"),
    "campaign_ratio": ("<= 1.03", "10k-recipient campaign time over its theoretical minimum"),
    "analytics_replay_ratio": (
        "",
        "rollup replay over the production puller with a no-op apply, 4 readers at once",
    ),
    "replay_growth_ratio": (">= 0.85", "replay events/s at the large size over the small one"),
    "peers_switchboard_429": ("== 0", "429 answers to Switchboard in the peers broadcast"),
    "peers_best_utilization": ("", "highest utilization among peers at 0 429s"),
    "peers_switchboard_utilization": ("", "Switchboard's utilization in the peers broadcast"),
    "subscriber_ratio": (
        "",
        "durable consumer msgs/s through FastStream's pull subscriber over the runtime's "
        "BatchPull worker (< 0.8: a hot path keeps BatchPull, issue 16)",
    ),
    "subscriber_batch_ratio": (
        "",
        "the same through FastStream's batch subscriber (PullSub(batch=True)) over BatchPull",
    ),
}


# How each benchmark is measured, written into the page so the numbers carry their method.
METHOD = """\
- **ingest**: verified Telegram webhooks/s through ingest as `just up` deploys it (normalizer
  on, default settings; only the per-account inbound limit is lifted, the load comes from one
  account), against a raw-ASGI app that parses the body and publishes it to JetStream with
  an ack (bench/baseline_ingest.py), closed loop from a separate process, interleaved runs.
  p50/p99/p99.9 open loop at half the measured rate, from each request's scheduled time.
- **crm**: realistic traffic (bench/traffic.py: messages, edits, replies with their delivery
  events and receipts, contacts, leads) over CONV, DELIVERY and CRM; `crm rebuild` replays
  all three projections end to end. Baseline: the projection's own puller (ack-less, the
  rebuild's batch size) with an apply that does nothing, the three readers at once, before
  and after the replay. `e2e_p99_ms`: ingest and crm processes with default settings,
  webhooks at 500/s, each timed until the CRM HTTP API lists it (message search).
- **analytics**: the same traffic; `analytics rebuild` against the same kind of baseline with
  its four readers at once.
- **outbound**: 3 instances, 10 sandbox bots, a backlog and a campaign (see bench_outbound.py).
- **peers**: the same 3-process broadcast through Switchboard's outbound, python-telegram-bot
  with AIORateLimiter and aiogram with its retry on TelegramRetryAfter (in their own venv),
  on one sandbox with the flood penalty on (unverified model: repeat offenders wait longer).
  Utilization: accepted sends over the window's maximum 30 * (T + 1) for the span T.
- **flows**: ingest, outbound and flows as processes, the demo flow on one sandbox bot; new
  conversations at 25/s, each `/start` timed from its POST to the sandbox accepting the
  greeting (`flows_reply_p99_ms`, goal <= 150). Steps/s of one flows instance through a
  backlog of 3-step runs over a plain nats-py pull + ack consumer of the same stream
  (`flows_steps_ratio`).
- **subscribers**: one backlog of small messages on RAW, read by one durable per run with
  the same batch (128), concurrency (16) and no-op handler settled by the failure policy:
  `consumer.PullWorker` on `BatchPull` against `subscribers.serve` (FastStream's pull
  subscriber) and FastStream's batch subscriber, runs alternating, best of each.
- **growth**: the CRM and analytics rebuilds as processes at each size (`BENCH_GROWTH_SIZES`),
  events/s, peak RSS and table size per million events.
"""


@dataclass
class Run:
    name: str
    results: dict[str, str]
    output: str
    seconds: float
    returncode: int


# The long reliability suite (issue #10): the same tests as the default run, long versions.
LONG_SUITE: tuple[tuple[str, dict[str, str], list[str]], ...] = (
    (
        "chaos",
        {"CHAOS_PER_BOT": "1500", "CHAOS_SCALE": "10"},
        ["tests/e2e/test_chaos_nats.py", "tests/e2e/test_chaos_platform.py"],
    ),
    ("soak", {"SOAK_SECONDS": "600"}, ["tests/e2e/test_soak.py"]),
)
# A test's result line, after whatever pytest -q printed on the same line before it (the
# progress dots of the tests that ran first).
SUMMARY = re.compile(r"^[.sxFE]*((?:chaos|soak) .*)$")


def summaries(lines: list[str]) -> list[str]:
    """The result lines the long tests printed, in order."""
    found = (SUMMARY.match(line.strip()) for line in lines)
    return [m.group(1) for m in found if m]


@dataclass
class LongRun:
    name: str
    env: dict[str, str]
    summaries: list[str]
    seconds: float
    passed: bool
    tail: str


def run_long(name: str, env: dict[str, str], tests: list[str]) -> LongRun:
    """Run one long scenario through pytest, keeping the lines the tests print as results."""
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-s", "-q", "-p", "no:cacheprovider",
         "--timeout", "3600", *tests],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
    )  # fmt: skip
    # The whole output stays on disk: the page only keeps the summaries and a failure's tail.
    log = Path(tempfile.gettempdir()) / f"switchboard-long-{name}.log"
    log.write_text(proc.stdout + proc.stderr)
    print(f"full output: {log}", flush=True)
    lines = proc.stdout.splitlines()
    return LongRun(
        name=name,
        env=env,
        summaries=summaries(lines),
        seconds=time.perf_counter() - start,
        passed=proc.returncode == 0,
        tail="\n".join(lines[-15:]),
    )


def machine() -> dict[str, str]:
    """What the numbers were measured on (ratios travel; absolute numbers do not)."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kib / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit or "unknown",
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "memory": mem,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
    }


def run_bench(path: Path) -> Run:
    """Run one benchmark, echoing its output as it goes."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, str(path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    for line in proc.stdout:
        sys.stdout.write(line)
        lines.append(line.rstrip("\n"))
    returncode = proc.wait()
    return Run(
        name=path.stem.removeprefix("bench_"),
        results=parse_results(lines),
        output="\n".join(lines),
        seconds=time.perf_counter() - start,
        returncode=returncode,
    )


def parse_results(lines: list[str]) -> dict[str, str]:
    """The last `key=value ...` line of a benchmark's output."""
    for line in reversed(lines):
        if RESULT.match(line.strip()):
            return dict(part.split("=", 1) for part in line.split())
    return {}


def meets(value: str, goal: str) -> str:
    """ "yes"/"no" for a goal like ">= 0.5", "" when there is none or the value is not a number."""
    if not goal:
        return ""
    op, target = goal.split()
    try:
        v, t = float(value), float(target)
    except ValueError:
        return "no"
    ok = {">=": v >= t, "<=": v <= t, "==": v == t}[op]
    return "yes" if ok else "no"


def render_long(long: list[LongRun]) -> list[str]:
    out = [
        "",
        "## Long reliability suite",
        "",
        "`just chaos` and `just soak`: the default test command runs short versions of the",
        "same tests. Each line below is what a test printed after its invariants held.",
        "",
    ]
    for run in long:
        settings = " ".join(f"{k}={v}" for k, v in run.env.items())
        verdict = "passed" if run.passed else "FAILED"
        out += [f"### {run.name}: {verdict} in {run.seconds / 60:.1f} min (`{settings}`)", ""]
        out += [f"- {line}" for line in run.summaries] or ["- (no summary printed)"]
        if not run.passed:
            out += ["", "```", run.tail, "```"]
        out.append("")
    return out


def render(runs: list[Run], info: dict[str, str], long: list[LongRun] | None = None) -> str:
    out = [
        "# Benchmarks",
        "",
        "Written by `just bench` (bench/report.py). Every benchmark measures its own baseline",
        "in the same run on the same machine, so the ratios hold across machines while the",
        "absolute numbers do not. Goals are the issues' targets.",
        "",
        "## Machine",
        "",
        *(f"- {k}: {v}" for k, v in info.items()),
        "",
        "## How it is measured",
        "",
        METHOD,
        "What was measured while looking for causes, and why each reader is what it is, is in",
        "[benchmark-notes.md](benchmark-notes.md) (kept by hand; this file is generated).",
        "",
        "## Results",
        "",
        "| benchmark | result | value | goal | met | meaning |",
        "|---|---|---|---|---|---|",
    ]
    for run in runs:
        if not run.results:
            out.append(f"| {run.name} | (no result; exit {run.returncode}) | | | | |")
        for key, value in run.results.items():
            goal, meaning = GOALS.get(key, ("", ""))
            out.append(
                f"| {run.name} | `{key}` | {value} | {goal} | {meets(value, goal)} | {meaning} |"
            )
    if long:
        out += render_long(long)
    out += ["", "## Full output", ""]
    for run in runs:
        out += [
            f"### {run.name} ({run.seconds:.0f} s, exit {run.returncode})",
            "",
            "```",
            run.output.strip(),
            "```",
            "",
        ]
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    parser.add_argument(
        "--long", action="store_true", help="also run the long chaos and soak suite (~20 min)"
    )
    parser.add_argument(
        "--out",
        help="where to write the report (default: docs/benchmarks.md, and only when all run)",
    )
    args = parser.parse_args()
    paths = sorted((ROOT / "bench").glob("bench_*.py"))
    if args.names:
        paths = [ROOT / "bench" / f"bench_{n}.py" for n in args.names]
    runs = []
    for path in paths:
        print(f"== {path.relative_to(ROOT)}", flush=True)
        runs.append(run_bench(path))
    long: list[LongRun] = []
    if args.long:
        for name, env, tests in LONG_SUITE:
            print(f"== long suite: {name}", flush=True)
            long.append(run_long(name, env, tests))
            print("\n".join(long[-1].summaries) or long[-1].tail, flush=True)
    out = args.out or (None if args.names else str(ROOT / "docs" / "benchmarks.md"))
    if out:  # a partial run never overwrites the full report
        Path(out).write_text(render(runs, machine(), long) + "\n")
        print(f"wrote {out}")
    failed = [r for r in long if not r.passed]
    return max((r.returncode for r in runs), default=0) or int(bool(failed))


if __name__ == "__main__":
    raise SystemExit(main())
