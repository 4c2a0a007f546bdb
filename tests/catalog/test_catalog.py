"""The catalog: join paths, categories and their parents, selections."""

import pytest

from lifecycle.catalog import Catalog, Hop, LinkError
from lifecycle.catalog.models import CatalogFile
from tests.config import sample


@pytest.fixture
def catalog():
    return Catalog(CatalogFile.model_validate(sample.CATALOG))


def test_multi_hop_path_ends_at_the_column_holding_the_subject_key(catalog):
    assert catalog.path_to_subject("chat_messages") == (
        Hop("chat_messages", "conversation_id", "conversations", "id"),
        Hop("conversations", "user_id", "users", "id"),
    )
    assert catalog.subject_column("chat_messages") == ("conversations", "user_id")
    assert catalog.path_to_subject("users") == ()
    assert catalog.subject_column("users") == ("users", "id")


def test_a_cycle_is_named(catalog):
    catalog.datasets["conversations"] = catalog.datasets["conversations"].model_copy(
        update={
            "subject": catalog.datasets["chat_messages"].subject.model_copy(
                update={"column": "x", "dataset": "chat_messages"}
            )
        }
    )
    with pytest.raises(LinkError, match="cycle: chat_messages -> conversations -> chat_messages"):
        catalog.path_to_subject("chat_messages")


def test_categories_include_their_children(catalog):
    assert catalog.category_lineage("credentials") == ["credentials", "network_identification"]
    assert catalog.is_within("credentials", "network_identification")
    assert not catalog.is_within("network_identification", "credentials")
    # users holds credentials (password_hash), so it holds network identification too
    assert catalog.datasets_in_category("network_identification") == ["users", "access_logs"]
    assert catalog.datasets_in_category("credentials") == ["users"]


def test_shareable_is_inherited_from_parents(catalog):
    assert not catalog.shareable("credentials")
    assert catalog.shareable("network_identification")


def test_personal_fields_take_the_dataset_category_when_they_have_none(catalog):
    fields = {f.column: f.category for f in catalog.personal_fields("access_logs")}
    assert fields == {"ip": "network_identification", "path": "access_records"}
    assert "tier" not in {f.column for f in catalog.personal_fields("users")}


def test_resolve_merges_categories_and_datasets_in_catalog_order(catalog):
    assert catalog.resolve(["transaction_records"], ["users"]) == ["users", "orders"]
    assert catalog.resolve(["access_records"], []) == ["access_logs", "conversations", "chat_messages", "chat_photos"]


def test_object_prefixes(catalog):
    assert catalog.subject_prefix("chat_photos", 42) == "chats/42/"
    assert catalog.static_prefix("chat_photos") == "chats/"
    assert catalog.object_datasets == ["chat_photos"]
