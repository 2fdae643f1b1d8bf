"""Request-body building blocks shared by every endpoint: strict models, safe text fields."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints


def _no_control_characters(value: str) -> str:
    # NUL and other control characters have no place in names or addresses; refusing them
    # here keeps them out of the database, the logs and the HTML.
    if any(ord(c) < 32 and c not in "\t" for c in value) or "\x7f" in value:
        raise ValueError("must not contain control characters")
    return value


def Text(max_length: int, *, min_length: int = 1) -> type[str]:  # noqa: N802 - reads as a type
    """A trimmed, printable string of bounded length."""
    return Annotated[  # type: ignore[return-value]
        str,
        StringConstraints(strip_whitespace=True, min_length=min_length, max_length=max_length),
        AfterValidator(_no_control_characters),
    ]


class StrictModel(BaseModel):
    """A request body: unknown fields are refused (no mass assignment), types are not coerced."""

    model_config = ConfigDict(extra="forbid", strict=True, str_strip_whitespace=False)
