"""Domain errors: each carries the HTTP status a view answers with and a message for people."""

from __future__ import annotations


class DomainError(Exception):
    """A request the domain refuses; views show ``message`` with ``status``."""

    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(DomainError):
    status = 404


class Forbidden(DomainError):
    status = 403


class Conflict(DomainError):
    status = 409


class InvalidInput(DomainError):
    status = 422
