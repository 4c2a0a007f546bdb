"""Every lifecycle DAG the configuration in ``$LIFECYCLE_CONFIG_DIR`` asks for (README: Add it to your Airflow)."""

from lifecycle.airflow import build_dags

build_dags(globals())
