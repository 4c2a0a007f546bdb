"""The record of processing for the demo configuration says what catalog.yaml and recipients.yaml
declare (read here as plain YAML, not through the lifecycle's models); purposes and legal bases
the catalog does not define are refused with the file, the key and what to add."""

import copy
import json
from pathlib import Path

import pytest
import yaml

from lifecycle import cli
from lifecycle.config import load_config
from lifecycle.errors import ConfigError
from lifecycle.registers.processing import record_of_processing, render
from tests.config import sample

DEMO = Path(__file__).resolve().parents[2] / "config" / "lifecycle"


def _read(name: str) -> dict:
    return yaml.safe_load((DEMO / name).read_text())


def _declared(catalog: dict) -> dict[str, dict[str, set[str]]]:
    """purpose -> personal dataset -> its categories the purpose covers, by the documented rule: a
    dataset's own purposes cover all its categories; a category's purposes (and its parents')
    cover that category."""
    categories = catalog["categories"]

    def purposes_of_category(name):
        found, seen = set(), []
        while name in categories and name not in seen:
            seen.append(name)
            found |= set(categories[name].get("purposes", []))
            name = categories[name].get("parent")
        return found

    declared: dict[str, dict[str, set[str]]] = {}
    for name, ds in catalog["datasets"].items():
        if ds.get("personal", True) is False:
            continue
        held = {ds["category"]} if ds.get("category") else set()
        for spec in (ds.get("fields") or {}).values():
            if spec.get("personal", True) and (spec.get("category") or ds.get("category")):
                held.add(spec.get("category") or ds["category"])
        assert held, f"{name}: a personal dataset of the demo holds no category"
        for purpose in ds.get("purposes", []):
            declared.setdefault(purpose, {}).setdefault(name, set()).update(held)
        for category in held:
            for purpose in purposes_of_category(category):
                declared.setdefault(purpose, {}).setdefault(name, set()).add(category)
    return declared


def test_the_demo_record_lists_every_personal_dataset_under_each_of_its_purposes():
    catalog, recipients = _read("catalog.yaml"), _read("recipients.yaml")
    record = record_of_processing(load_config(DEMO))
    declared = _declared(catalog)
    personal = {n for n, ds in catalog["datasets"].items() if ds.get("personal", True) is not False}
    assert personal == {d for by in declared.values() for d in by}, "every personal dataset serves a purpose"

    assert record["controller"] == catalog["controller"]
    assert record["security_measures"] == catalog["security_measures"]
    assert [p["purpose"] for p in record["purposes"]] == sorted(catalog["purposes"])
    for entry in record["purposes"]:
        purpose = catalog["purposes"][entry["purpose"]]
        assert (entry["title"], entry["legal_basis"]) == (purpose["title"], purpose["legal_basis"])
        assert entry["people"] == catalog["subject"]["people"]
        listed = {d["dataset"]: set(d["categories"]) for d in entry["datasets"]}
        assert listed == declared.get(entry["purpose"], {}), entry["purpose"]
        assert {c["category"] for c in entry["categories"]} == set().union(*listed.values())
        serving = {r["id"]: r for r in recipients["recipients"] if entry["purpose"] in r.get("purposes", [])}
        assert {r["recipient"] for r in entry["recipients"]} == set(serving)
        for r in entry["recipients"]:
            assert (r["country"], r["safeguards"]) == (
                serving[r["recipient"]]["country"],
                serving[r["recipient"]].get("safeguards"),
            )


def test_retention_periods_are_the_rules_and_floors_that_cover_each_dataset():
    retention = _read("retention.yaml")
    record = record_of_processing(load_config(DEMO))
    [logs] = [p for p in record["purposes"] if p["purpose"] == "network_logs"]
    [access_logs] = [d for d in logs["datasets"] if d["dataset"] == "access_logs"]
    [rule] = [r for r in retention["rules"] if "access_logs" in r["applies_to"].get("datasets", [])]
    [floor] = [f for f in retention["statutory"] if "access_logs" in f["applies_to"].get("datasets", [])]
    assert access_logs["retention"]["rule"] == {"name": rule["name"], "keep": rule["keep"], "action": rule["action"]}
    assert access_logs["retention"]["statutory_floors"] == [
        {"name": floor["name"], "minimum": floor["minimum"], "basis": floor["basis"]}
    ]
    assert (
        access_logs["retention"]["on_cancellation"]["complete_within"] == _read("cancellation.yaml")["complete_within"]
    )


def test_the_record_is_the_same_for_the_same_configuration_and_renders():
    config = load_config(DEMO)
    first, second = record_of_processing(config), record_of_processing(load_config(DEMO))
    assert first == second
    html = render(first)
    for purpose in first["purposes"]:
        assert purpose["title"].replace("'", "&#39;") in html
    assert "GDPR art. 6(1)(f): legitimate interests" in html


def _refused(tmp_path, change) -> list[str]:
    files = copy.deepcopy(sample.FILES)
    change(files["catalog.yaml"])
    with pytest.raises(ConfigError) as caught:
        load_config(sample.write(tmp_path, files))
    return [str(p) for p in caught.value.problems]


def test_a_personal_dataset_without_a_purpose_is_refused_naming_what_to_add(tmp_path):
    def change(catalog):
        catalog["categories"]["transaction_records"].pop("purposes")

    assert _refused(tmp_path, change) == [
        "catalog.yaml: datasets.orders: personal dataset 'orders' serves no purpose; add purposes: [<purpose>] to "
        "the dataset, or to one of its categories (transaction_records), naming purposes defined under purposes:"
    ]


def test_an_unknown_purpose_is_refused(tmp_path):
    def change(catalog):
        catalog["datasets"]["orders"]["purposes"] = ["bookkeeping", "resale"]

    assert _refused(tmp_path, change) == [
        "catalog.yaml: datasets.orders.purposes[1]: unknown purpose 'resale'; defined: account, bookkeeping, network_logs"
    ]


def test_an_unknown_legal_basis_is_refused(tmp_path):
    def change(catalog):
        catalog["purposes"]["bookkeeping"]["legal_basis"] = "legal_duty"

    assert _refused(tmp_path, change) == [
        "catalog.yaml: purposes.bookkeeping.legal_basis: unknown legal basis 'legal_duty'; one of consent, contract, "
        "legal_obligation, vital_interests, public_task, legitimate_interests (GDPR art. 6(1)(a)-(f))"
    ]


def test_a_recipient_naming_an_unknown_purpose_is_refused(tmp_path):
    files = copy.deepcopy(sample.FILES)
    files["recipients.yaml"]["recipients"][0]["purposes"] = ["profiling"]
    with pytest.raises(ConfigError) as caught:
        load_config(sample.write(tmp_path, files))
    assert [(p.file, p.path) for p in caught.value.problems] == [("recipients.yaml", "recipients[0].purposes[0]")]


def test_the_record_needs_a_controller(tmp_path):
    files = copy.deepcopy(sample.FILES)
    del files["catalog.yaml"]["controller"]
    with pytest.raises(ConfigError, match=r"catalog\.yaml: controller: the record of processing names the controller"):
        record_of_processing(load_config(sample.write(tmp_path, files)))


def test_the_command_prints_the_record_as_json_or_html(capsys):
    assert cli.main(["--config", str(DEMO), "records", "processing", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == record_of_processing(load_config(DEMO))
    assert cli.main(["--config", str(DEMO), "records", "processing"]) == 0
    assert capsys.readouterr().out.startswith("<!doctype html>")
