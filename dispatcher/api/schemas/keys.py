"""The bodies of ``/v1/keys``: create, show, the key shown once."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from ...vocabulary import Role
from .common import EXAMPLE_TIME, ID_EXAMPLES, Strict, Text, check_text

# As deliveries.Status: the members' words inline in /openapi.json.
Roles = Literal[Role.ADMIN, Role.PUBLISHER, Role.SUBSCRIBER]
ROLE_TEXT = ("admin: everything; publisher: sends and reads its events; subscriber: manages "
             "its subscriptions and reads their deliveries")


class KeyIn(Strict):
    role: Roles = Field(description=ROLE_TEXT,
                                               examples=[Role.PUBLISHER])
    name: Text = Field(min_length=1, max_length=200, examples=["billing service"],
                       description="a name for people, 1 to 200 characters")

    _name = field_validator("name")(check_text)


class KeyOut(BaseModel):
    id: str = Field(description="the key's id (not the key itself)",
                    examples=[ID_EXAMPLES["key"]])
    role: Roles = Field(description=ROLE_TEXT,
                                               examples=[Role.PUBLISHER])
    name: str = Field(description="its name", examples=["billing service"])
    created_at: datetime = Field(description="when it was made (UTC)", examples=[EXAMPLE_TIME])


class KeyCreated(KeyOut):
    key: str = Field(description="the key to send as 'Authorization: Bearer <key>'; shown in "
                                 "this answer only, never again",
                     examples=["dk_3vQ9x0Zq2hXbq4gk1T7m8WcYpLr5sN6uJdE0aFiHoKc"])
