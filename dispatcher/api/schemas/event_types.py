"""The bodies of ``/v1/event-types``: put (create or replace) and show."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, field_validator

from .common import EXAMPLE_TIME, EXAMPLE_TYPE, Strict, Text, check_text

DESCRIPTION_TEXT = "what the type means, for people, at most 2,000 characters"
SCHEMA_TEXT = ("a JSON Schema (draft 4 to 2020-12; references only inside it) that the "
               "data of every event of this type must match; null: any data")
EXAMPLE_SCHEMA = {"type": "object", "required": ["id", "amount"],
                  "properties": {"id": {"type": "string"},
                                 "amount": {"type": "integer", "minimum": 0}}}
EXAMPLE_DATA = {"id": "in_1", "amount": 4200}


class EventTypeIn(Strict):
    description: Text = Field(default="", max_length=2000, description=DESCRIPTION_TEXT,
                              examples=["An invoice was paid in full."])
    # "schema" is pydantic's own attribute name: the field keeps the contract's name.
    data_schema: dict[str, Any] | None = Field(default=None, alias="schema",
                                               description=SCHEMA_TEXT,
                                               examples=[EXAMPLE_SCHEMA])
    deprecated: bool = Field(default=False, strict=True,
                             description="still accepted, but new subscribers should not "
                                         "rely on it")
    example: dict[str, Any] | None = Field(
        default=None, examples=[EXAMPLE_DATA],
        description="an example of data for this type; it must match the schema")

    _description = field_validator("description")(check_text)


class EventTypeOut(BaseModel):
    type: str = Field(examples=[EXAMPLE_TYPE], description="the event type")
    description: str = Field(description=DESCRIPTION_TEXT)
    data_schema: dict[str, Any] | None = Field(alias="schema", description=SCHEMA_TEXT,
                                               examples=[EXAMPLE_SCHEMA])
    deprecated: bool = Field(description="still accepted, but new subscribers should not "
                                         "rely on it")
    example: dict[str, Any] | None = Field(examples=[EXAMPLE_DATA],
                                           description="an example of data for this type")
    created_at: datetime = Field(description="when it was first put (UTC)",
                                 examples=[EXAMPLE_TIME])
    updated_at: datetime = Field(description="when it was last put (UTC)",
                                 examples=[EXAMPLE_TIME])
