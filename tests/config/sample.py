"""A small valid configuration (SPEC §3 shapes) that tests copy and break."""

import copy

import yaml

CATALOG = {
    "systems": {
        "app_db": {"type": "sql", "conn_id": "app_db"},
        "media": {"type": "s3", "conn_id": "media_s3", "bucket": "mic-buyer-media"},
        "state": {"type": "sql", "conn_id": "lifecycle_state"},
        "drop": {"type": "s3", "conn_id": "partner_s3", "bucket": "partner-drop"},
    },
    "controller": {
        "name": "MIC Buyer Services Ltd.",
        "address": "88 Example Road, Nanjing",
        "privacy_contact": "privacy@mic.example",
    },
    "purposes": {
        "account": {"title": "Run the buyer's account", "legal_basis": "contract"},
        "network_logs": {"title": "Keep network logs", "legal_basis": "legal_obligation"},
        "bookkeeping": {"title": "Keep transaction records", "legal_basis": "legal_obligation"},
    },
    "categories": {
        "basic_info": {"title": "Basic information", "purposes": ["account"]},
        "network_identification": {"title": "Network identification information", "purposes": ["account"]},
        "credentials": {"parent": "network_identification", "shareable": False},
        "access_records": {"title": "Personal Internet access records", "purposes": ["network_logs"]},
        "transaction_records": {"title": "Transaction records", "purposes": ["bookkeeping"]},
    },
    "subject": {"dataset": "users", "key": "id", "contact": {"email": "email", "name": "name"}},
    "datasets": {
        "users": {
            "system": "app_db",
            "table": "users",
            "primary_key": "id",
            "created": "created_at",
            "fields": {
                "email": {"category": "basic_info", "anonymize": "hmac"},
                "name": {"category": "basic_info", "anonymize": "redact"},
                "password_hash": {"category": "credentials", "anonymize": "null"},
                "tier": {"personal": False},
            },
        },
        "access_logs": {
            "system": "app_db",
            "table": "access_logs",
            "primary_key": "id",
            "subject": "user_id -> users.id",
            "created": "logged_at",
            "category": "access_records",
            "fields": {"ip": {"category": "network_identification", "anonymize": "truncate_ip"}, "path": {}},
        },
        "conversations": {
            "system": "app_db",
            "table": "conversations",
            "primary_key": "id",
            "subject": "user_id -> users.id",
            "created": "created_at",
            "category": "access_records",
        },
        "chat_messages": {
            "system": "app_db",
            "table": "chat_messages",
            "primary_key": "id",
            "subject": "conversation_id -> conversations.id",
            "created": "sent_at",
            "category": "access_records",
            "fields": {"body": {"anonymize": "redact"}},
        },
        "orders": {
            "system": "app_db",
            "table": "orders",
            "primary_key": "id",
            "subject": "user_id -> users.id",
            "created": "created_at",
            "category": "transaction_records",
            "fields": {"address": {"anonymize": "redact"}, "amount": {"personal": False}},
        },
        "chat_photos": {
            "system": "media",
            "prefix": "chats/{subject}/",
            "created": "last_modified",
            "category": "access_records",
        },
    },
}

RETENTION = {
    "schedule": "0 2 * * *",
    "batch_size": 1000,
    "max_fraction_per_run": 0.25,
    "rules": [
        {
            "name": "access-records-6mo",
            "applies_to": {"categories": ["access_records"]},
            "keep": "6mo",
            "action": "delete",
        },
        {"name": "orders-3y", "applies_to": {"datasets": ["orders"]}, "keep": "3y", "action": "anonymize"},
    ],
    "statutory": [
        {
            "name": "ecommerce-transactions",
            "applies_to": {"categories": ["transaction_records"]},
            "minimum": "3y",
            "basis": "PRC E-Commerce Law art. 31",
        },
        {
            "name": "network-logs",
            "applies_to": {"datasets": ["access_logs"]},
            "minimum": "6mo",
            "basis": "PRC Cybersecurity Law art. 21",
        },
    ],
}

CANCELLATION = {
    "schedule": "@hourly",
    "requests": {"dataset": "users", "subject": "id", "requested_at": "created_at"},
    "grace_period": "15d",
    "complete_within": "30d",
    "default_action": "delete",
    "overrides": [{"applies_to": {"categories": ["transaction_records"]}, "action": "anonymize"}],
}

RECIPIENTS = {
    "recipients": [
        {
            "id": "push_provider",
            "name": "Acme Push Ltd.",
            "contact": "privacy@acmepush.example",
            "role": "processor",
            "legal_basis": "entrusted_processing",
            "purpose": "Deliver push notifications",
            "agreement": {
                "id": "DPA-2024-017",
                "type": "confidentiality",
                "signed": "2024-03-01",
                "expires": "2027-03-01",
            },
            "share": {"users": ["email", "tier"]},
            "delivery": {"system": "drop", "prefix": "push/{ds}/", "format": "jsonl"},
            "schedule": "@weekly",
        }
    ]
}

INCIDENTS = {
    "email": {"conn_id": "smtp_default", "from": "MIC Privacy <privacy@mic.example>", "max_per_second": 200},
    "announcement": {"system": "media", "key": "notices/{incident_id}.html"},
    "fallback": {"affected_at_least": 500000, "unreachable_fraction_at_least": 0.1},
    "regulators": [
        {
            "id": "cac_jiangsu",
            "name": "Jiangsu CAC",
            "deadline": "4h",
            "when": {"affected_at_least": 1000000},
            "contact": "reports@cac-jiangsu.regulator.example",
        },
        {
            "id": "eu_lead_sa",
            "name": "Lead SA",
            "deadline": "72h",
            "when": {"subject_countries": ["DE", "FR"]},
            "contact": "breach@lead-sa.regulator.example",
        },
    ],
    "contact": {"name": "Personal information protection officer", "email": "privacy@mic.example"},
    "locales": ["en", "zh-CN"],
    "approval": "none",
}

FILES = {
    "catalog.yaml": CATALOG,
    "retention.yaml": RETENTION,
    "cancellation.yaml": CANCELLATION,
    "recipients.yaml": RECIPIENTS,
    "incidents.yaml": INCIDENTS,
}


def write(folder, files=None):
    """Write ``files`` (default: a deep copy of the valid sample) as YAML into ``folder``."""
    files = copy.deepcopy(FILES) if files is None else files
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    return folder
