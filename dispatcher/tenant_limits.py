"""The size limit of a tenant's metadata, checked alike by the API and the CLI (which must
not load FastAPI to check it)."""

from __future__ import annotations

import json
from typing import Any

MAX_METADATA_BYTES = 16 * 1024


def metadata_size(value: dict[str, Any]) -> int:
    """The bytes of ``value`` as compact UTF-8 JSON: what the limit counts."""
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())
