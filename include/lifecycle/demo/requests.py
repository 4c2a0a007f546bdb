"""What the demo's subject_request run did, for the summary ``make demo`` prints."""

from __future__ import annotations

DAG_ID = "subject_request"


def summary(outcomes) -> list[str]:
    lines = []
    for outcome in outcomes:
        if outcome.dag_id != DAG_ID:
            continue
        answers = [v for task, v in sorted(outcome.returned.items()) if task.startswith("answer") and v]
        if answers:
            lines.append("\nsubject requests (from the app's privacy_requests table):")
        for answer in answers:
            lines.append(f"  {answer['request_id']} ({answer['kind']}): {answer['state']} — {_what(answer)}")
        written = outcome.returned.get("report")
        if written:
            lines.append(f"  report: {written['html']}")
    return lines


def _what(answer: dict) -> str:
    result = answer.get("result") or {}
    if answer["kind"] == "access":
        return f"{result.get('rows', 0)} row(s), {result.get('objects', 0)} object(s) in {result.get('package', '?')}"
    if answer["kind"] == "erase":
        changed = result.get("datasets", {})
        return ", ".join(f"{name} {d['action']}d {d['changed']}" for name, d in sorted(changed.items())) or "nothing"
    recipients = result.get("recipients") or []
    return f"consent rows withdrawn: {result.get('withdrawn', 0)}; deletion requests to {len(recipients)} recipient(s)"
