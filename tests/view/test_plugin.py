"""Airflow's plugin manager finds the Privacy view through the installed package's
``airflow.plugins`` entry point, with an empty plugins folder: the app under /privacy, the
navigation entry, the macro of the approval body (in a fresh interpreter, as an Airflow process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

PROBE = """
import json
from airflow import plugins_manager
apps, _ = plugins_manager.get_fastapi_plugins()
plugins, _ = plugins_manager._get_plugins()
plugin = next(p for p in plugins if p.name == "privacy_view")
views, _ = plugins_manager._get_ui_plugins()
print(json.dumps({
    "apps": [a["url_prefix"] for a in apps],
    "views": [v for v in views if v["name"] == "Privacy"],
    "macros": [m.__name__ for m in plugin.macros],
    "errors": {k: str(v) for k, v in plugins_manager.get_import_errors().items()},
}))
"""


def test_the_plugin_loads_with_its_app_navigation_entry_and_macro(tmp_path):
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW__")},
        "AIRFLOW_HOME": str(tmp_path),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(tmp_path / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    }
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    found = json.loads(out.stdout.strip().splitlines()[-1])
    assert found["errors"] == {}
    assert "/privacy" in found["apps"]
    (view,) = found["views"]
    assert (view["name"], view["href"], view["destination"], view["url_route"]) == (
        "Privacy",
        "/privacy/",
        "nav",
        "privacy",
    )
    assert found["macros"] == ["approval_body"]
