"""Invalid configurations are refused with the file, the key path and the reason."""

import copy

import pytest

from lifecycle.config import load_config
from lifecycle.errors import ConfigError
from tests.config import sample


def _mutate(change):
    files = copy.deepcopy(sample.FILES)
    change(files)
    return files


def _set(path, value):
    """A change that sets files[path[0]][path[1]]...[path[-1]] = value."""

    def change(files):
        node = files
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = value

    return change


def _drop(path):
    def change(files):
        node = files
        for part in path[:-1]:
            node = node[part]
        del node[path[-1]]

    return change


# a table that holds nothing personal and links to no one: the engine never deletes from it
AUDIT = {
    "system": "app_db",
    "table": "audit_events",
    "personal": False,
    "created": "at",
    "fields": {"kind": {"personal": False}},
}

CASES = [
    # (id, change, file, key path, words in the message)
    (
        "unknown top-level key",
        _set(["retention.yaml", "max_fraction"], 0.5),
        "retention.yaml",
        "max_fraction",
        "unknown key",
    ),
    (
        "unknown nested key",
        _set(["catalog.yaml", "datasets", "users", "fields", "email", "categroy"], "x"),
        "catalog.yaml",
        "datasets.users.fields.email.categroy",
        "valid keys here: category, personal, anonymize",
    ),
    (
        "bad duration",
        _set(["retention.yaml", "rules", 1, "keep"], "3 years"),
        "retention.yaml",
        "rules[1].keep",
        "'3 years' is not a duration",
    ),
    (
        "bad duration unit",
        _set(["cancellation.yaml", "grace_period"], "15x"),
        "cancellation.yaml",
        "grace_period",
        "is not a duration",
    ),
    (
        "unknown category",
        _set(["catalog.yaml", "datasets", "users", "fields", "email", "category"], "basics"),
        "catalog.yaml",
        "datasets.users.fields.email.category",
        "unknown category 'basics'",
    ),
    (
        "unknown category parent",
        _set(["catalog.yaml", "categories", "credentials", "parent"], "network"),
        "catalog.yaml",
        "categories.credentials.parent",
        "unknown category 'network'",
    ),
    (
        "category parent cycle",
        _set(["catalog.yaml", "categories", "network_identification", "parent"], "credentials"),
        "catalog.yaml",
        "categories.credentials.parent",
        "cycle",
    ),
    (
        "unknown system",
        _set(["catalog.yaml", "datasets", "orders", "system"], "billing_db"),
        "catalog.yaml",
        "datasets.orders.system",
        "unknown system 'billing_db'",
    ),
    (
        "table on an s3 system",
        _set(["catalog.yaml", "datasets", "orders", "system"], "media"),
        "catalog.yaml",
        "datasets.orders.system",
        "needs a sql system",
    ),
    (
        "unknown strategy",
        _set(["catalog.yaml", "datasets", "users", "fields", "name", "anonymize"], "scramble"),
        "catalog.yaml",
        "datasets.users.fields.name.anonymize",
        "unknown strategy 'scramble'; valid: null, redact, hmac",
    ),
    (
        "option of another strategy",
        _set(["catalog.yaml", "datasets", "users", "fields", "name", "anonymize"], {"strategy": "hmac", "to": "month"}),
        "catalog.yaml",
        "datasets.users.fields.name.anonymize",
        "option 'to' does not apply to strategy 'hmac'",
    ),
    (
        "unquoted null strategy",
        _set(["catalog.yaml", "datasets", "users", "fields", "name", "anonymize"], None),
        "catalog.yaml",
        "datasets.users.fields.name.anonymize",
        'write anonymize: "null"',
    ),
    (
        "subject link cycle",
        _set(["catalog.yaml", "datasets", "conversations", "subject"], "user_id -> chat_messages.id"),
        "catalog.yaml",
        "datasets.chat_messages.subject",
        "cycle",
    ),
    (
        "unreachable dataset",
        _drop(["catalog.yaml", "datasets", "conversations", "subject"]),
        "catalog.yaml",
        "datasets.conversations.subject",
        "has no subject link",
    ),
    (
        "link to unknown dataset",
        _set(["catalog.yaml", "datasets", "access_logs", "subject"], "user_id -> people.id"),
        "catalog.yaml",
        "datasets.access_logs.subject",
        "unknown dataset 'people'",
    ),
    (
        "link across systems",
        lambda f: (
            f["catalog.yaml"]["systems"].update(crm={"type": "sql", "conn_id": "crm"})
            or f["catalog.yaml"]["datasets"]["conversations"].update(system="crm")
        ),
        "catalog.yaml",
        "datasets.chat_messages.subject",
        "crosses into another system (conversations)",
    ),
    (
        "malformed link",
        _set(["catalog.yaml", "datasets", "access_logs", "subject"], "user_id => users.id"),
        "catalog.yaml",
        "datasets.access_logs.subject",
        "is not a subject link",
    ),
    (
        "object prefix without subject",
        _set(["catalog.yaml", "datasets", "chat_photos", "prefix"], "chats/"),
        "catalog.yaml",
        "datasets.chat_photos.prefix",
        "needs {subject}",
    ),
    (
        "rule below statutory minimum",
        _set(["retention.yaml", "rules", 1, "keep"], "30d"),
        "retention.yaml",
        "rules[1].keep",
        "30d is shorter than the statutory minimum 3y (orders: PRC E-Commerce Law art. 31)",
    ),
    (
        "days below a calendar floor",
        _set(["retention.yaml", "rules", 0, "keep"], "180d"),
        "retention.yaml",
        "rules[0].keep",
        "180d is shorter than the statutory minimum 6mo",
    ),
    (
        "duplicate rule names",
        _set(["retention.yaml", "rules", 1, "name"], "access-records-6mo"),
        "retention.yaml",
        "rules",
        "'access-records-6mo' is used 2 times",
    ),
    (
        "two rules for one dataset",
        _set(["retention.yaml", "rules", 1, "applies_to"], {"datasets": ["orders", "access_logs"]}),
        "retention.yaml",
        "rules[1].applies_to",
        "'access_logs' is already covered by rules[0]",
    ),
    (
        "anonymize without strategy",
        _set(["retention.yaml", "rules", 0, "action"], "anonymize"),
        "retention.yaml",
        "rules[0].action",
        "cannot apply to object dataset 'chat_photos'",
    ),
    (
        "fraction above one",
        _set(["retention.yaml", "max_fraction_per_run"], 1.5),
        "retention.yaml",
        "max_fraction_per_run",
        "less than or equal to 1",
    ),
    (
        "unknown action",
        _set(["cancellation.yaml", "default_action"], "archive"),
        "cancellation.yaml",
        "default_action",
        "'archive'",
    ),
    (
        "missing required key",
        _drop(["cancellation.yaml", "requests"]),
        "cancellation.yaml",
        "requests",
        "required key is missing",
    ),
    (
        "duplicate recipient ids",
        lambda f: f["recipients.yaml"]["recipients"].append(copy.deepcopy(f["recipients.yaml"]["recipients"][0])),
        "recipients.yaml",
        "recipients",
        "'push_provider' is used 2 times",
    ),
    (
        "sharing a credential",
        _set(["recipients.yaml", "recipients", 0, "share"], {"users": ["password_hash"]}),
        "recipients.yaml",
        "recipients[0].share.users[0]",
        "never shared",
    ),
    (
        "sharing an unknown column",
        _set(["recipients.yaml", "recipients", 0, "share"], {"users": ["shoe_size"]}),
        "recipients.yaml",
        "recipients[0].share.users[0]",
        "'shoe_size' is not a column",
    ),
    (
        "consent basis without consent",
        _set(["recipients.yaml", "recipients", 0, "legal_basis"], "consent"),
        "recipients.yaml",
        "recipients[0].consent",
        "needs consent",
    ),
    (
        "agreement expires before signed",
        _set(["recipients.yaml", "recipients", 0, "agreement", "expires"], "2023-01-01"),
        "recipients.yaml",
        "recipients[0].agreement",
        "is not after signed",
    ),
    (
        "bad regulator country",
        _set(["incidents.yaml", "regulators", 1, "when", "subject_countries"], ["Germany"]),
        "incidents.yaml",
        "regulators[1].when.subject_countries[0]",
        "'Germany' is not an ISO 3166-1 alpha-2 country code",
    ),
    (
        "regulator with neither contact nor delivery",
        _drop(["incidents.yaml", "regulators", 1, "contact"]),
        "incidents.yaml",
        "regulators[1]",
        "regulator 'eu_lead_sa' has neither contact (an e-mail address) nor delivery {system, prefix}",
    ),
    (
        "regulator contact not an e-mail address",
        _set(["incidents.yaml", "regulators", 0, "contact"], "Jiangsu CAC, Nanjing"),
        "incidents.yaml",
        "regulators[0].contact",
        "'Jiangsu CAC, Nanjing' is not an e-mail address",
    ),
    (
        "regulator delivery to an unknown system",
        _set(["incidents.yaml", "regulators", 0, "delivery"], {"system": "cac_portal", "prefix": "in/"}),
        "incidents.yaml",
        "regulators[0].delivery.system",
        "unknown system 'cac_portal'; the catalog has",
    ),
    (
        "regulator delivery to a sql system",
        _set(["incidents.yaml", "regulators", 0, "delivery"], {"system": "app_db"}),
        "incidents.yaml",
        "regulators[0].delivery.system",
        "needs an s3 system",
    ),
    (
        "regulator delivery without a system",
        _set(["incidents.yaml", "regulators", 0, "delivery"], {"prefix": "in/"}),
        "incidents.yaml",
        "regulators[0].delivery.system",
        "required",
    ),
    (
        "regulator locale not configured",
        _set(["incidents.yaml", "regulators", 0, "locale"], "fr"),
        "incidents.yaml",
        "regulators[0].locale",
        "'fr' is not one of incidents.yaml's locales (en, zh-CN)",
    ),
    (
        "deadlines window not a duration",
        _set(["deadlines.yaml"], {"near": {"agreements": "a month"}}),
        "deadlines.yaml",
        "near.agreements",
        "'a month' is not a duration",
    ),
    (
        "deadlines check unknown",
        _set(["deadlines.yaml"], {"near": {"subject_request": "1d"}}),
        "deadlines.yaml",
        "near.subject_request",
        "unknown key",
    ),
    (
        "deadlines summary without mail settings",
        lambda f: f.update({"deadlines.yaml": {"notify": True}}) or f.pop("incidents.yaml"),
        "deadlines.yaml",
        "notify",
        "the summary to the privacy contact needs mail settings",
    ),
    (
        "announcement on a sql system",
        _set(["incidents.yaml", "announcement", "system"], "app_db"),
        "incidents.yaml",
        "announcement.system",
        "needs an s3 system",
    ),
    (
        "grace longer than deadline",
        _set(["cancellation.yaml", "grace_period"], "60d"),
        "cancellation.yaml",
        "complete_within",
        "leaves no time after the grace period 60d",
    ),
    (
        "composite primary key",
        _set(["catalog.yaml", "datasets", "orders", "primary_key"], ["order_id", "line"]),
        "catalog.yaml",
        "datasets.orders.primary_key",
        "a list ([order_id, line]); composite keys are not supported: add a single-column unique key and name it",
    ),
    (
        "primary key as a one-item list",
        _set(["catalog.yaml", "datasets", "orders", "primary_key"], ["id"]),
        "catalog.yaml",
        "datasets.orders.primary_key",
        "a list ([id]); write the column alone: primary_key: id",
    ),
    (
        "personal table without a key",
        _drop(["catalog.yaml", "datasets", "orders", "primary_key"]),
        "catalog.yaml",
        "datasets.orders",
        "needs primary_key (one column)",
    ),
    (
        "linked table without a key",
        lambda f: (
            f["catalog.yaml"]["datasets"]["orders"].update(personal=False, category=None, fields={})
            or f["catalog.yaml"]["datasets"]["orders"].pop("primary_key")
        ),
        "catalog.yaml",
        "datasets.orders",
        "needs primary_key (one column)",
    ),
    (
        "rule on a table without a key",
        lambda f: (
            f["catalog.yaml"]["datasets"].update(audit_events=AUDIT)
            or f["retention.yaml"]["rules"].append(
                {"name": "audit-1y", "applies_to": {"datasets": ["audit_events"]}, "keep": "1y"}
            )
        ),
        "retention.yaml",
        "rules[2].applies_to",
        "dataset 'audit_events' has no primary_key in catalog.yaml",
    ),
    (
        "cancellation requests without a key",
        lambda f: (
            f["catalog.yaml"]["datasets"].update(audit_events=AUDIT)
            or f["cancellation.yaml"]["requests"].update(dataset="audit_events")
        ),
        "cancellation.yaml",
        "requests.dataset",
        "dataset 'audit_events' has no primary_key in catalog.yaml",
    ),
]


@pytest.mark.parametrize("change,file,path,words", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_invalid_configuration_is_refused_with_file_and_key(tmp_path, change, file, path, words):
    sample.write(tmp_path, _mutate(change))
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path)
    found = [p for p in caught.value.problems if p.file == file and p.path == path]
    assert found, f"no problem at {file}: {path}; got {[str(p) for p in caught.value.problems]}"
    assert any(words in p.message for p in found), [str(p) for p in found]


def test_the_sample_is_valid(tmp_path):
    config = load_config(sample.write(tmp_path))
    assert [r.name for r in config.retention.rules] == ["access-records-6mo", "orders-3y"]


def test_a_non_personal_table_without_subject_needs_no_key(tmp_path):
    files = _mutate(lambda f: f["catalog.yaml"]["datasets"].update(audit_events=AUDIT))
    config = load_config(sample.write(tmp_path, files))
    assert config.catalog.dataset("audit_events").primary_key is None


def test_duplicate_yaml_key_is_refused_with_its_line(tmp_path):
    sample.write(tmp_path)
    text = (tmp_path / "retention.yaml").read_text()
    (tmp_path / "retention.yaml").write_text(text + "batch_size: 5\n")
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path)
    [problem] = caught.value.problems
    assert problem.file == "retention.yaml"
    assert "duplicate key 'batch_size' (first at line 2)" in problem.message


def test_every_problem_is_reported_at_once(tmp_path):
    files = _mutate(_set(["retention.yaml", "rules", 1, "keep"], "30d"))
    files["catalog.yaml"]["datasets"]["orders"]["system"] = "nowhere"
    sample.write(tmp_path, files)
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path)
    assert {p.file for p in caught.value.problems} == {"catalog.yaml", "retention.yaml"}
    assert "invalid configuration (2 problem(s))" in str(caught.value)


def test_missing_catalog_is_named(tmp_path):
    sample.write(tmp_path)
    (tmp_path / "catalog.yaml").unlink()
    with pytest.raises(ConfigError, match=r"catalog\.yaml: file not found"):
        load_config(tmp_path)


def test_optional_files_may_be_absent(tmp_path):
    sample.write(tmp_path, {"catalog.yaml": copy.deepcopy(sample.CATALOG)})
    config = load_config(tmp_path)
    assert config.cancellation is None and config.incidents is None
    assert config.retention.rules == [] and config.recipients.recipients == []


def test_the_deadlines_dag_reads_deadlines_yaml_alone_at_parse_time(tmp_path):
    from lifecycle.config import load_deadlines

    sample.write(tmp_path)
    assert load_deadlines(tmp_path).schedule == "@hourly", "absent: the defaults"
    (tmp_path / "deadlines.yaml").write_text("schedule: '0 * * * *'\nnear: {agreements: 60d}\n")
    assert load_deadlines(tmp_path).near.agreements.text == "60d"
    (tmp_path / "deadlines.yaml").write_text("near: {agreements: soon}\n")
    with pytest.raises(ConfigError, match=r"deadlines.yaml: near.agreements: 'soon' is not a duration"):
        load_deadlines(tmp_path)
