"""README's "Faults survived" table from the cells a fault-suite run recorded.

    LIFECYCLE_FAULTS_REPORT=/tmp/faults.jsonl .venv/bin/python -m pytest tests/faults -n 0
    .venv/bin/python -m tests.faults.report /tmp/faults.jsonl

One row per DAG and fault: the outcomes met (how many cells each), the backends, the runs
(task tries, retries included) over all its cells, and what the test checked.
"""

from __future__ import annotations

import json
import sys
from collections import Counter, defaultdict

ORDER = ["retention_expiry", "cancellation_erasure", "subject_request", "sharing_<recipient>", "incident_notification"]


def table(lines: list[dict]) -> str:
    rows: dict[tuple[str, str], dict] = defaultdict(lambda: {"outcomes": Counter(), "backends": set(), "runs": 0})
    checked: dict[tuple[str, str], str] = {}
    for line in lines:
        row = rows[(line["dag"], line["fault"])]
        row["outcomes"][line["outcome"]] += 1
        row["backends"].add(line["backend"])
        row["runs"] += line["runs"]
        checked[(line["dag"], line["fault"])] = line["checked"]
    out = [
        "| DAG | fault | outcome (cells) | backends | runs | checked |",
        "|---|---|---|---|---|---|",
    ]
    for (dag, fault), row in sorted(rows.items(), key=lambda item: (ORDER.index(item[0][0]), item[0][1])):
        outcomes = "; ".join(f"{outcome} ({n})" for outcome, n in sorted(row["outcomes"].items()))
        backends = ", ".join(sorted(row["backends"]))
        out.append(f"| {dag} | {fault} | {outcomes} | {backends} | {row['runs']} | {checked[(dag, fault)]} |")
    return "\n".join(out)


def main(argv: list[str]) -> int:
    with open(argv[0]) as fh:
        print(table([json.loads(line) for line in fh if line.strip()]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
