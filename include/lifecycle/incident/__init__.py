"""Incident notification (``incident_notification``): form, register, people, obligations, notices, reports."""

from lifecycle.incident.form import FormError, IncidentForm, airflow_params, param_schemas, parse
from lifecycle.incident.notify import IncidentNotification

__all__ = ["FormError", "IncidentForm", "IncidentNotification", "airflow_params", "param_schemas", "parse"]
