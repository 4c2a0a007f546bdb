"""notifications.yaml: mail to people, for every DAG that writes to them (SPEC §3)."""

from __future__ import annotations

from typing import Annotated

from pydantic import ConfigDict, Field

from lifecycle.durations import Duration
from lifecycle.shapes import DurationField, Model

NOTIFICATIONS = "notifications.yaml"


CONN_ID = r"^[A-Za-z0-9_.-]+$"  # what Airflow accepts as a connection id


class Email(Model):
    conn_id: Annotated[str, Field(pattern=CONN_ID)] = "smtp_default"
    from_: str = Field(alias="from")
    max_per_second: Annotated[float, Field(gt=0)] = 50  # for the whole run, every connection together
    connections: Annotated[int, Field(ge=1, le=64)] = 4  # SMTP sessions an incident run keeps open side by side
    retry_attempts: Annotated[int, Field(ge=1, le=10)] = 3  # tries per address on a 4xx reply
    retry_backoff: DurationField = Duration.parse("2s")  # wait before the 2nd try; doubles each time

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class ContactPoint(Model):
    """Who people and regulators can write to about their information."""

    name: str
    email: str
    phone: str | None = None


class NotificationsFile(Model):
    """Mail to people, for every DAG that writes to them (erasure notices, incident notices)."""

    email: Email
    contact: ContactPoint
    locales: list[str] = ["en"]  # the first is the fallback for a person whose language has no template
