"""Request bodies as the domain functions take them: keyword arguments for a create, a change
set for a PATCH. Secrets are unwrapped here, at the edge, so ``models`` sees plain strings."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, SecretStr


def _fields(body: BaseModel, names: Iterable[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in names:
        value = getattr(body, name)
        out[name] = value.get_secret_value() if isinstance(value, SecretStr) else value
    return out


def create_fields(body: BaseModel) -> dict[str, Any]:
    """Every field of a create body by name, defaults included (nested models stay models)."""
    return _fields(body, type(body).model_fields)


def sent_fields(body: BaseModel) -> dict[str, Any]:
    """The fields of a PATCH body the client sent: an omitted field is left alone, while an
    explicit ``null`` reaches the domain function."""
    return _fields(body, body.model_fields_set)
