"""JSON <-> domain records. Unknown fields are ignored; a missing or mistyped field is an error,
except names and descriptions: a null or missing one is "" (shown as unnamed), so one sloppy
object does not hide a whole list."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from bot.domain import model


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


def _text_or_empty(value: object) -> object:
    """A null name or description is no name or description."""
    return "" if value is None else value


class ServerRefIn(_Lenient):
    id: int
    name: str = ""

    _name = field_validator("name", mode="before")(_text_or_empty)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class SnapshotIn(_Lenient):
    id: int
    server: ServerRefIn
    name: str = ""
    status: str
    size_mb: int | None = None
    created_at: datetime
    description: str | None = None
    message: str | None = None

    _tz = field_validator("created_at")(_utc)
    _name = field_validator("name", mode="before")(_text_or_empty)

    def to_domain(self) -> model.Snapshot:
        return model.Snapshot(
            id=self.id,
            server=model.ServerRef(self.server.id, self.server.name),
            name=self.name,
            status=self.status,
            size_mb=self.size_mb,
            created_at=self.created_at,
            description=self.description or "",
        )


class BackupIn(_Lenient):
    id: int
    server: ServerRefIn
    backup_type: str
    status: str
    size_mb: int | None = None
    created_at: datetime
    expires_at: datetime | None = None
    description: str | None = None
    message: str | None = None

    @field_validator("created_at", "expires_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        return None if value is None else _utc(value)

    def to_domain(self) -> model.Backup:
        try:
            backup_type: model.BackupType | str = model.BackupType(self.backup_type)
        except ValueError:
            backup_type = self.backup_type
        return model.Backup(
            id=self.id,
            server=model.ServerRef(self.server.id, self.server.name),
            backup_type=backup_type,
            status=self.status,
            size_mb=self.size_mb,
            created_at=self.created_at,
            expires_at=self.expires_at,
            description=self.description or "",
        )


class ServerIn(_Lenient):
    id: int
    name: str = ""
    status: str

    _name = field_validator("name", mode="before")(_text_or_empty)

    def to_domain(self) -> model.Server:
        return model.Server(self.id, self.name, self.status)


class PageIn(_Lenient):
    count: int
    results: list[dict[str, Any]]
    next: str | None = None


class RestoreIn(_Lenient):
    message: str = ""
    server: ServerIn


M = TypeVar("M", bound=BaseModel)


class SchemaError(ValueError):
    """The body does not have the documented shape."""


def parse(schema: type[M], data: object) -> M:
    """`data` as `schema`; SchemaError names the first bad field (never its value)."""
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise SchemaError(f"{where}: {first['msg']}") from None
