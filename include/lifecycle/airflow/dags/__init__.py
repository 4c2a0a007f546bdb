"""The lifecycle's DAG definitions, one module per promise; ``lifecycle.airflow.build_dags`` executes them."""
