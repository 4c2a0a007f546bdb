"""The pieces every configuration file's model is built from.

``Model`` refuses unknown keys and is frozen; the annotated types parse a
duration, a name the YAML uses as a key, and a rule name.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer

from lifecycle.durations import Duration

DurationField = Annotated[Duration, BeforeValidator(Duration.parse), PlainSerializer(str)]
Name = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
RuleName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def exactly_one(model, first: str, second: str, message: str):
    """``model`` when exactly one of its fields ``first`` and ``second`` is set (a model
    validator's answer); ``message`` when both or neither are."""
    if bool(getattr(model, first)) == bool(getattr(model, second)):
        raise ValueError(message)
    return model
