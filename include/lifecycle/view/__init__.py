"""The Privacy view's read models (overview, documents, incidents, the approval body) and its
FastAPI app (``web``), which ``plugins/privacy_view.py`` mounts in the api-server."""
