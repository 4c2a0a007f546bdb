"""Where the package's own files are: the templates every document and mail is rendered from,
shipped inside the package and found through ``importlib.resources`` (in a wheel as in a checkout)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

TEMPLATES = Path(str(resources.files("lifecycle").joinpath("templates")))
