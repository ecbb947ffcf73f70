"""Errors raised by the store; each carries the HTTP status the API answers with."""

from __future__ import annotations


class LakeServerError(Exception):
    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(LakeServerError):
    status = 400


class Unauthorized(LakeServerError):
    status = 401


class NotFound(LakeServerError):
    status = 404


class Conflict(LakeServerError):
    status = 409


class PreconditionFailed(LakeServerError):
    status = 412


class PayloadTooLarge(LakeServerError):
    status = 413


class RangeNotSatisfiable(LakeServerError):
    status = 416

    def __init__(self, message: str, size: int) -> None:
        super().__init__(message)
        self.size = size
