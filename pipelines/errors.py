"""One exception type carrying the error kind that lands in the result document."""

from __future__ import annotations

from contract.schema import ErrorInfo, ErrorKind


class PipelineError(Exception):
    def __init__(self, kind: ErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind: ErrorKind = kind
        self.message = message

    def info(self) -> ErrorInfo:
        return {"kind": self.kind, "message": self.message}
