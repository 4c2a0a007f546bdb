"""Conformance suite: seeded generated worlds, an independent oracle, the engine's real path.

``world`` generates a small application (schema, rows, S3 objects, configuration)
from a seed; ``oracle`` computes the expected end state from the generator's
in-memory model and reads the actual one with plain SQL and boto3; ``runner``
(the only module that imports ``lifecycle``) drives the engine through Airflow
connections.  ``test_conformance`` compares the two per world and backend.
"""
