"""Mail is configured once, in notifications.yaml, for every DAG that writes to people."""

import copy

import pytest

from lifecycle.config import load_config
from lifecycle.errors import ConfigError
from tests.config import sample

MAIL = {key: sample.INCIDENTS[key] for key in ("email", "contact", "locales")}


def _files(*, notifications=True, incidents_mail=False, notify=None):
    """The sample with mail in notifications.yaml (and/or, as older files had it, in incidents.yaml)."""
    files = copy.deepcopy(sample.FILES)
    if not incidents_mail:
        for key in MAIL:
            del files["incidents.yaml"][key]
    if notifications:
        files["notifications.yaml"] = copy.deepcopy(MAIL)
    if notify is not None:
        files["cancellation.yaml"]["notify"] = notify
    return files


def _problems(tmp_path, files) -> list[str]:
    sample.write(tmp_path, files)
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path)
    return [str(p) for p in caught.value.problems]


def test_notifications_yaml_configures_mail_for_erasure_and_incidents(tmp_path):
    config = load_config(sample.write(tmp_path, _files(notify={"scheduled": "cancellation_scheduled"})))
    assert config.notifications.email.conn_id == "smtp_default"
    assert config.notifications.contact.email == "privacy@mic.example"
    assert config.notifications.locales == ["en", "zh-CN"]
    assert config.incidents.email is None, "incidents.yaml keeps only what is about incidents"


def test_an_older_incidents_yaml_still_configures_mail(tmp_path):
    config = load_config(sample.write(tmp_path, _files(notifications=False, incidents_mail=True)))
    assert config.notifications.email.from_ == "MIC Privacy <privacy@mic.example>"
    assert config.notifications.locales == ["en", "zh-CN"]


def test_mail_in_both_files_is_refused(tmp_path):
    problems = _problems(tmp_path, _files(incidents_mail=True))
    for key in ("email", "contact", "locales"):
        assert f"incidents.yaml: {key}: mail is configured in notifications.yaml; remove {key} here" in problems


def test_cancellation_notices_without_mail_settings_are_refused_at_validation(tmp_path):
    files = _files(notifications=False, notify={"completed": "cancellation_completed"})
    del files["incidents.yaml"]
    problems = _problems(tmp_path, files)
    assert problems == [
        "cancellation.yaml: notify.completed: notices need mail settings: add notifications.yaml "
        "(email: conn_id, from; contact)"
    ]


def test_a_notice_template_missing_in_a_locale_is_refused(tmp_path):
    files = _files(notify={"scheduled": "cancellation_scheduled", "completed": "account_gone"})
    problems = _problems(tmp_path, files)
    assert len(problems) == 2, problems  # account_gone has neither an en nor a zh-CN template
    assert problems[0].startswith("notifications.yaml: locales[0]: 'en' has no account gone template")
    assert "cancellation.yaml: notify.completed" in problems[0]


def test_a_connection_id_airflow_cannot_name_is_refused(tmp_path):
    files = _files()
    files["notifications.yaml"]["email"]["conn_id"] = "smtp default"
    assert any(p.startswith("notifications.yaml: email.conn_id:") for p in _problems(tmp_path, files))
