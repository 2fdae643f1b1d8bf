"""Time-ordered identifiers (UUID version 7, RFC 9562).

Rows of partitioned tables get a UUIDv7 id whose embedded millisecond timestamp is also their
``created_at``, so a lookup by id alone can name its partition.
"""

from __future__ import annotations

import os
import time
import uuid
from datetime import UTC, datetime


def uuid7(at: datetime | None = None) -> uuid.UUID:
    """A new UUIDv7 for the instant ``at`` (now by default)."""
    millis = int((at.timestamp() if at else time.time()) * 1000)
    rand = int.from_bytes(os.urandom(10), "big")
    value = (millis & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76  # version
    value |= ((rand >> 62) & 0xFFF) << 64  # 12 random bits
    value |= 0b10 << 62  # variant
    value |= rand & ((1 << 62) - 1)  # 62 random bits
    return uuid.UUID(int=value)


def uuid7_time(value: uuid.UUID) -> datetime:
    """The instant (millisecond precision, UTC) embedded in a UUIDv7."""
    if value.version != 7:
        raise ValueError("not a UUIDv7")
    return datetime.fromtimestamp((value.int >> 80) / 1000, tz=UTC)
