"""What cancellation erasure does to each dataset, and the anonymizations its verification
could not accept, refused before any run with the file and key."""

import copy

import pytest

from lifecycle.config import load_config
from lifecycle.config.erasure_actions import anonymized_link, cancellation_actions
from lifecycle.errors import ConfigError
from tests.config import sample

ANONYMIZE_ACCOUNTS = {
    "default_action": "anonymize",
    "overrides": [{"applies_to": {"categories": ["access_records"]}, "action": "delete"}],
}


def _files(cancellation=None, **datasets):
    """The sample with cancellation.yaml keys replaced and catalog datasets' keys updated."""
    files = copy.deepcopy(sample.FILES)
    files["cancellation.yaml"].update(cancellation or {})
    for name, keys in datasets.items():
        files["catalog.yaml"]["datasets"][name].update(keys)
    return files


def test_accounts_kept_anonymized_with_links_kept_or_cleared_are_valid(tmp_path):
    config = load_config(sample.write(tmp_path, _files(ANONYMIZE_ACCOUNTS, orders={"on_anonymize": {"link": "keep"}})))
    catalog = config.catalog
    assert cancellation_actions(catalog, config.cancellation) == {
        "users": "anonymize",
        "access_logs": "delete",
        "conversations": "delete",
        "chat_messages": "delete",
        "orders": "anonymize",
        "chat_photos": "delete",
    }
    assert anonymized_link(catalog, "orders") == "keep" and anonymized_link(catalog, "users") == "keep"
    default = load_config(sample.write(tmp_path / "default", _files(ANONYMIZE_ACCOUNTS)))
    assert anonymized_link(default.catalog, "orders") == "clear", "unset: the link is cleared (as before)"


CASES = [
    (
        "default_action anonymize over a personal field without a strategy",
        _files({"default_action": "anonymize"}),
        "cancellation.yaml",
        "default_action",
        "anonymize applies to 'access_logs', but its personal field 'path' has no anonymize strategy",
    ),
    (
        "the account's own row kept with no field to anonymize",
        _files(
            ANONYMIZE_ACCOUNTS,
            users={"category": "basic_info", "fields": {"tier": {"personal": False}}},
        ),
        "cancellation.yaml",
        "default_action",
        "anonymizing 'users' keeps its rows the person's, but it has no personal field",
    ),
    (
        "a link kept to a row the erasure deletes",
        _files(orders={"on_anonymize": {"link": "keep"}}),
        "catalog.yaml",
        "datasets.orders.on_anonymize.link",
        "keep: cancellation erasure deletes 'users', which 'orders' rows point at",
    ),
    (
        "a link kept on rows with nothing to anonymize",
        _files(
            {
                **ANONYMIZE_ACCOUNTS,
                "overrides": [{"applies_to": {"datasets": ["conversations"]}, "action": "anonymize"}],
            },
            access_logs={"fields": {"ip": {"category": "network_identification", "anonymize": "truncate_ip"}}},
            conversations={"on_anonymize": {"link": "keep"}},
        ),
        "catalog.yaml",
        "datasets.conversations.on_anonymize.link",
        "nothing would change",
    ),
    (
        "on_anonymize on a dataset without a subject link",
        _files(users={"on_anonymize": {"link": "keep"}}),
        "catalog.yaml",
        "datasets.users",
        "on_anonymize needs a subject link",
    ),
    (
        "an unknown link choice",
        _files(orders={"on_anonymize": {"link": "drop"}}),
        "catalog.yaml",
        "datasets.orders.on_anonymize.link",
        "clear",
    ),
]


@pytest.mark.parametrize("files,file,path,words", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_an_anonymization_verification_could_not_accept_is_refused(tmp_path, files, file, path, words):
    with pytest.raises(ConfigError) as caught:
        load_config(sample.write(tmp_path, files))
    found = [p for p in caught.value.problems if p.file == file and p.path == path]
    assert found, f"no problem at {file}: {path}; got {[str(p) for p in caught.value.problems]}"
    assert any(words in p.message for p in found), [str(p) for p in found]
