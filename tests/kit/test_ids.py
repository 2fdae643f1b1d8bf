"""UUIDv7: version, variant, order and the embedded time."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from diboas.kit.ids import uuid7, uuid7_time


def test_uuid7_is_version_7_rfc_variant_and_unique() -> None:
    ids = [uuid7() for _ in range(2000)]
    assert {i.version for i in ids} == {7}
    assert {i.variant for i in ids} == {uuid.RFC_4122}
    assert len(set(ids)) == len(ids)


def test_uuid7_orders_by_time_and_carries_it() -> None:
    at = datetime(2026, 11, 25, 12, 30, 15, 123000, tzinfo=UTC)
    early, late = uuid7(at), uuid7(at + timedelta(milliseconds=1))
    assert early < late
    assert uuid7_time(early) == at


def test_uuid7_time_refuses_other_versions() -> None:
    with pytest.raises(ValueError, match="UUIDv7"):
        uuid7_time(uuid.uuid4())
