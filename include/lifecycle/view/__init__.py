"""The Privacy view's read models (overview, documents, incidents, the approval body) and its
FastAPI app (``web``), which ``lifecycle.airflow.plugin`` mounts in the api-server."""
