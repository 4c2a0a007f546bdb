"""The Privacy view in the Airflow UI: the lifecycle's FastAPI app (``lifecycle.view.web``),
mounted by the api-server under ``/privacy``, and its entry in the navigation.  Airflow finds
it through the ``airflow.plugins`` entry point of the installed package (pyproject.toml).

The app checks every caller itself (Airflow does not protect plugin routes);
see ``lifecycle.view.permissions`` for who sees what.
"""

from __future__ import annotations

from typing import ClassVar

from airflow.plugins_manager import AirflowPlugin

from lifecycle.view.approval import approval_body

URL_PREFIX = "/privacy"


def _app():
    from lifecycle.view.web import app

    return app


class PrivacyViewPlugin(AirflowPlugin):
    name = "privacy_view"
    fastapi_apps: ClassVar[list] = [{"app": _app(), "url_prefix": URL_PREFIX, "name": "Privacy view"}]
    external_views: ClassVar[list] = [
        {
            "name": "Privacy",
            "href": URL_PREFIX + "/",
            "destination": "nav",
            "url_route": "privacy",
            "nav_top_level": True,
        }
    ]
    macros: ClassVar[list] = [approval_body]  # {{ macros.privacy_view.approval_body(ti) }} in the approval task's body
