"""Privacy Lifecycle: the domain package.

Configuration -> catalog -> plan -> stores.  Plain Python, usable without an
Airflow scheduler; DAG files in ``dags/`` only wire it.
"""
