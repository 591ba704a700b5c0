"""Errors that cross layers: each maps to one HTTP status and names what was wrong."""

from __future__ import annotations


class KvnetError(Exception):
    """Base class; `status` is the HTTP status the API answers with."""

    status = 500

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def to_dict(self) -> dict[str, str | None]:
        return {"type": type(self).__name__, "field": self.field, "message": self.message}

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


class InvalidInput(KvnetError):
    """The request is malformed or violates a rule of the model."""

    status = 422


class NotFound(KvnetError):
    status = 404


class Conflict(KvnetError):
    """The request is valid but clashes with what is stored (in use, taken, duplicate)."""

    status = 409


class IdTaken(Conflict):
    """The id is in use, or another resource's id starts with the same hex digits (device names on the
    hosts derive from them)."""


class RetryableConflict(Conflict):
    """A concurrent writer changed what this transaction read; retrying is safe."""


class Exhausted(Conflict):
    """A pool (IPs, MACs, segment ids, VFs) has nothing left to allocate."""


class Compacted(KvnetError):
    """A watch asked for a revision the store no longer keeps; re-list and resume."""

    status = 410

    def __init__(self, message: str, compact_revision: int) -> None:
        super().__init__(message)
        self.compact_revision = compact_revision


class PayloadTooLarge(KvnetError):
    """The request body is larger than the API accepts for that route."""

    status = 413


class UnsupportedMediaType(KvnetError):
    """The request body is not JSON."""

    status = 415


class MethodNotAllowed(KvnetError):
    """The path exists, but not with this method (the answer's `Allow` header lists those it has)."""

    status = 405
