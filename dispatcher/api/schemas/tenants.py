"""The bodies of ``/v1/tenants``: put (create or replace) and show."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, field_validator

from ...tenant_limits import MAX_METADATA_BYTES, metadata_size
from .common import EXAMPLE_TENANT, EXAMPLE_TIME, Strict, Text, check_text

NAME_TEXT = "a name for people, at most 200 characters; null: none"
METADATA_TEXT = ("your own data about the tenant, a JSON object of at most 16 KiB, kept and "
                 "shown as it is")


class TenantIn(Strict):
    name: Text | None = Field(default=None, max_length=200, description=NAME_TEXT,
                              examples=["Acme Corp"])
    metadata: dict[str, Any] = Field(default_factory=dict, examples=[{"plan": "pro"}],
                                     description=METADATA_TEXT + "; left out: {}")

    _name = field_validator("name")(check_text)

    @field_validator("metadata")
    @classmethod
    def _small(cls, value: dict[str, Any]) -> dict[str, Any]:
        size = metadata_size(value)
        if size > MAX_METADATA_BYTES:
            raise ValueError(f"is {size} bytes as JSON; at most {MAX_METADATA_BYTES} are kept")
        return value


class TenantOut(BaseModel):
    id: str = Field(description="the tenant's id: yours, as you put it",
                    examples=[EXAMPLE_TENANT])
    name: str | None = Field(description=NAME_TEXT, examples=["Acme Corp"])
    metadata: dict[str, Any] = Field(description=METADATA_TEXT, examples=[{"plan": "pro"}])
    created_at: datetime = Field(description="when it was first put (UTC)",
                                 examples=[EXAMPLE_TIME])
    updated_at: datetime = Field(description="when it was last put (UTC)",
                                 examples=[EXAMPLE_TIME])


PORTAL_MIN_SECONDS, PORTAL_MAX_SECONDS = 60, 604_800  # a minute to a week


class PortalLinkIn(Strict):
    # strict: "yes" or "120" are not taken for true or 120 (what a link may do is exact).
    expires_in_seconds: int = Field(
        default=3600, ge=PORTAL_MIN_SECONDS, le=PORTAL_MAX_SECONDS, strict=True,
        examples=[3600],
        description="how long the link works, from now: 60 to 604,800 seconds (a week)")
    read_only: bool = Field(default=False, strict=True,
                            description="true: the portal shows the tenant's "
                            "endpoints and deliveries but changes nothing")


class PortalLinkOut(BaseModel):
    url: str = Field(description="open it in a browser to enter the tenant's portal; its "
                     "secret is after the '#', which browsers never send to a server",
                     examples=["https://hooks.example.com/portal#ptk_3q2…"])
    expires_at: datetime = Field(description="when the link and its sessions stop working (UTC)",
                                 examples=[EXAMPLE_TIME])
    read_only: bool = Field(description="whether the portal it opens changes nothing")
