"""Trigger forms: JSON-schema params the Airflow UI renders, checked again when the run starts.

A form is ``{name: (default, JSON schema)}``.  ``airflow_params`` turns it
into the DAG's ``Param`` objects (Airflow refuses input that does not fit);
``checked`` validates a run's ``conf`` against the same schemas, so a run
triggered through the REST API or the CLI is held to the same rules.
Each DAG's form module adds the rules between fields.
"""

from __future__ import annotations

from lifecycle.errors import LifecycleError


class FormError(LifecycleError):
    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        lines = "\n".join(f"  {p}" for p in self.problems)
        super().__init__(f"the trigger form is not valid ({len(self.problems)} problem(s)); nothing was done:\n{lines}")


def choices(title: str, description: str, options: list[str], **limits) -> dict:
    """Any of ``options``, each at most once; the form lists them all as examples."""
    return {
        "type": "array",
        "items": {"type": "string", "enum": options},
        "uniqueItems": True,
        **limits,
        "title": title,
        "examples": options,
        "description": description,
    }


def airflow_params(schemas: dict[str, tuple]) -> dict:
    """The DAG's ``params``: Airflow ``Param`` objects built from a form's schemas."""
    from airflow.sdk import Param

    params = {}
    for name, (default, schema) in schemas.items():
        params[name] = (
            Param(default, **schema) if default is not None or "null" in str(schema.get("type")) else Param(**schema)
        )
    return params


def checked(conf: dict, schemas: dict[str, tuple]) -> dict:
    """Every field's value (``conf``'s or the default), each fitting its schema; the rules
    between fields are only checked once every field fits."""
    import jsonschema

    problems: list[str] = []
    unknown = sorted(set(conf) - set(schemas))
    if unknown:
        problems.append(f"unknown field(s) {unknown}; the form has {', '.join(schemas)}")
    values = {}
    for name, (default, schema) in schemas.items():
        value = conf.get(name, default)
        values[name] = value
        if value is None and "null" not in str(schema.get("type")):
            problems.append(f"{name}: required ({schema['title']})")
            continue
        try:
            jsonschema.validate(value, schema, format_checker=jsonschema.FormatChecker())
        except jsonschema.ValidationError as exc:
            problems.append(f"{name}: {exc.message}")
    if problems:
        raise FormError(problems)
    return values
