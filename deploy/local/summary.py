"""Reads a scale-test run (deploy/local/scale-test.sh): picks the replica to drain, and
prints the one-line summary, exiting 1 when a session was lost."""

import json
import sys
from pathlib import Path

# A session's final is correct when its word error rate against the reference is at most this.
CORRECT_WER = 0.35
# A completed session is lost all the same when its final is this much shorter than the
# reference: a final cut short (a drain that finalized too early) drops the rest of what was
# said. A final of about the right length with more errors is the model mishearing (tiny.en
# hears "Tear a thin sheet from the yellow pad" as "Tera thin sheet from the yellow pan"
# offline too): counted and reported, and failing the run only when it is common.
CUT_SHORT = 0.6
MISHEARD_SHARE = 0.1


def metric(text: str, name: str, method: str | None = None) -> float:
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name):
            continue
        if method and f'rpc_method="{method}"' not in line:
            continue
        total += float(line.rsplit(" ", 1)[1])
    return total


def replica_metrics(work: Path, i: int, suffix: str = "") -> str:
    path = work / f"metrics{i}{suffix}"
    return path.read_text() if path.exists() else ""


def admitted(text: str) -> int:
    """Streams a replica took: finished calls plus those open (gauge) at the scrape."""
    done = metric(text, "hearken_rpc_requests_total", "StreamingRecognize")
    return int(done + metric(text, "hearken_sessions_active"))


def pick(work: Path) -> None:
    open_streams = {i: metric(replica_metrics(work, i), "hearken_sessions_active") for i in (1, 2, 3)}
    print(max(open_streams, key=lambda i: (open_streams[i], -i)))


def summary(work: Path, proxy: str, victim: int, victim_rc: int, drained_in: str) -> int:
    report = json.loads((work / "loadgen.json").read_text())
    sessions = [s for r in report["rounds"] for s in r["round"]["sessions"]]
    correct = misheard = refused = lost = 0
    for s in sessions:
        heard = len((s["hypothesis"] or "").split())
        said = s["reference_words"] or 0
        if s["outcome"] == "refused":
            refused += 1
        elif s["outcome"] == "completed" and said and heard and s["errors"] / said <= CORRECT_WER:
            correct += 1
        elif s["outcome"] == "completed" and said and heard >= CUT_SHORT * said:
            misheard += 1
            print(f"misheard: {s['clip']}: {s['hypothesis']!r}", file=sys.stderr)
        else:
            lost += 1
            print(f"lost: {s['clip']}: {s['outcome']} {s.get('code')} {s.get('message')} "
                  f"{s['hypothesis']!r}", file=sys.stderr)
    at_sigterm = metric(replica_metrics(work, victim, ".at-sigterm"), "hearken_sessions_active")
    per_replica = []
    for i in (1, 2, 3):
        note = ""
        if i == victim:
            note = f" (drained: {int(at_sigterm)} open at SIGTERM, exit {victim_rc} in {drained_in} s)"
        per_replica.append(f"hearken{i}={admitted(replica_metrics(work, i))}{note}")
    rss = (work / "peak-rss").read_text().split() if (work / "peak-rss").exists() else []
    print(f"scale-test {proxy}: {len(sessions)} sessions: {correct} completed with a correct "
          f"final, {misheard} misheard by the model, {refused} refused (retryable), {lost} lost; "
          f"per replica: {' '.join(per_replica)}"
          + (f"; peak RSS of the others {', '.join(rss)} MiB" if rss else ""))
    before = [admitted(replica_metrics(work, i, ".at-sigterm" if i == victim else "")) for i in (1, 2, 3)]
    problems = []
    if lost:
        problems.append(f"{lost} sessions lost")
    if misheard > MISHEARD_SHARE * len(sessions):
        problems.append(f"{misheard} sessions misheard: more than the model's usual few")
    if victim_rc != 0:
        problems.append(f"the drained replica exited with {victim_rc}")
    if at_sigterm < 1:
        problems.append("the drained replica had no open stream at SIGTERM")
    if min(before) == 0:
        problems.append("a replica got no session: the proxy did not balance")
    if correct == 0:
        problems.append("no session completed")
    for p in problems:
        print(f"scale-test: FAILED: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    command, work = sys.argv[1], Path(sys.argv[2])
    if command == "pick":
        pick(work)
    else:
        sys.exit(summary(work, sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]))
