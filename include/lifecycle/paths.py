"""Where the repository's own files are: the templates every document and mail is rendered from."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TEMPLATES = REPO / "include" / "templates"
