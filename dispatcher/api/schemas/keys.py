"""The bodies of ``/v1/keys``: create, show, the key shown once."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from ...vocabulary import Role
from .common import (
    EXAMPLE_TIME,
    ID_EXAMPLES,
    Strict,
    TenantId,
    Text,
    check_tenant_id,
    check_text,
)

# As deliveries.Status: the members' words inline in /openapi.json.
Roles = Literal[Role.ADMIN, Role.PUBLISHER, Role.SUBSCRIBER]
ROLE_TEXT = ("admin: everything; publisher: sends and reads its events; subscriber: manages "
             "its subscriptions and reads their deliveries")

KEY_TENANT_TEXT = ("for a subscriber key only: the tenant it is scoped to; it then manages "
                   "every subscription of that tenant and sees nothing else")


class KeyIn(Strict):
    role: Roles = Field(description=ROLE_TEXT,
                                               examples=[Role.PUBLISHER])
    name: Text = Field(min_length=1, max_length=200, examples=["billing service"],
                       description="a name for people, 1 to 200 characters")
    tenant_id: TenantId | None = Field(
        default=None, description=KEY_TENANT_TEXT + "; left out: not scoped")

    _name = field_validator("name")(check_text)
    _tenant = field_validator("tenant_id")(check_tenant_id)


class KeyOut(BaseModel):
    id: str = Field(description="the key's id (not the key itself)",
                    examples=[ID_EXAMPLES["key"]])
    role: Roles = Field(description=ROLE_TEXT,
                                               examples=[Role.PUBLISHER])
    name: str = Field(description="its name", examples=["billing service"])
    tenant_id: str | None = Field(description=KEY_TENANT_TEXT + "; null: not scoped",
                                  examples=[None])
    created_at: datetime = Field(description="when it was made (UTC)", examples=[EXAMPLE_TIME])


class KeyCreated(KeyOut):
    key: str = Field(description="the key to send as 'Authorization: Bearer <key>'; shown in "
                                 "this answer only, never again",
                     examples=["dk_3vQ9x0Zq2hXbq4gk1T7m8WcYpLr5sN6uJdE0aFiHoKc"])
