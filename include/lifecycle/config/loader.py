"""Read the YAML files and turn every parse or shape error into a ``Problem``."""

from __future__ import annotations

import os
import types
import typing
from pathlib import Path

import yaml
from pydantic import BaseModel, ValidationError

from lifecycle.errors import Problem

ENV_DIR = "LIFECYCLE_CONFIG_DIR"
SYSTEM_TYPES = {"sql", "s3", "iceberg", "delta"}


def config_dir(path: str | os.PathLike | None = None) -> Path:
    """The folder given, else ``$LIFECYCLE_CONFIG_DIR``, else ``config/lifecycle`` of the working directory."""
    if path is not None:
        return Path(path)
    if os.environ.get(ENV_DIR):
        return Path(os.environ[ENV_DIR])
    return Path.cwd() / "config" / "lifecycle"


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key written twice in one mapping (YAML keeps the last)."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False):
    seen: dict = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first at line {seen[key]})", key_node.start_mark
            )
        seen[key] = key_node.start_mark.line + 1
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def read_yaml(path: Path) -> tuple[object, list[Problem]]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, [Problem(path.name, "", f"file not found in {path.parent}")]
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader), []
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        reason = getattr(exc, "problem", None) or str(exc)
        return None, [Problem(path.name, where, f"not valid YAML: {reason}")]


def key_path(loc: tuple) -> str:
    """('rules', 2, 'keep') -> 'rules[2].keep'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _message(error: dict) -> str:
    kind, msg = error["type"], error["msg"]
    if kind == "extra_forbidden":
        return f"unknown key {error['loc'][-1]!r}"
    if kind == "missing":
        return "required key is missing"
    if kind == "value_error":
        return msg.removeprefix("Value error, ")
    if kind in {"model_type", "dict_type"} and error.get("input") is None:
        return "is empty; write a mapping"
    return f"{error.get('input')!r}: {msg}" if "input" in error and not isinstance(error["input"], dict) else msg


def parse_model(file: str, data: object, model: type[BaseModel]) -> tuple[BaseModel | None, list[Problem]]:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        return None, [Problem(file, "", f"top level must be a mapping, not {type(data).__name__}")]
    try:
        return model.model_validate(data), []
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and p.startswith("function-")))
            # pydantic reports which union member failed ("str", "Anonymize"); the user wrote one key.
            loc = tuple(p for p in loc if p not in {"Anonymize", "SubjectLink", "str", "int"})
            tag = None
            if loc[:1] == ("systems",) and len(loc) > 2 and loc[2] in SYSTEM_TYPES:
                tag, loc = loc[2], loc[:2] + loc[3:]  # the system's type, which pydantic names as the union member
            if error["type"] == "extra_forbidden" and loc:
                problems.append(
                    Problem(file, key_path(loc), f"unknown key; valid keys here: {_valid_keys(model, loc, tag)}")
                )
            else:
                problems.append(Problem(file, key_path(loc), _message(error)))
        return None, problems


def _valid_keys(model: type[BaseModel], loc: tuple, tag: str | None = None) -> str:
    """The keys accepted where ``loc`` points, so the message can list them (``tag``: the
    ``type`` that picks a member of a union, as a system's does)."""
    current: object = model
    for part in loc[:-1]:
        current = _unwrap(current, tag)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(part)
            current = field.annotation if field else None
        elif typing.get_origin(current) in (list, dict):
            current = typing.get_args(current)[-1]
        else:
            return "see the configuration reference"
    current = _unwrap(current, tag)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return ", ".join(f.alias or name for name, f in current.model_fields.items())
    return "see the configuration reference"


def _unwrap(annotation, tag: str | None = None):
    """Strip Annotated[...] and Optional[...] down to the model or container (of a union of
    models, the one whose ``type`` may be ``tag``, else the first)."""
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        models = [a for a in members if isinstance(a, type) and issubclass(a, BaseModel)]
        tagged = [
            m for m in models if "type" in m.model_fields and tag in typing.get_args(m.model_fields["type"].annotation)
        ]
        annotation = _unwrap((tagged or models or members)[0], tag)
    return annotation
