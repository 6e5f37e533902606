"""The one exception type the package raises on purpose.

Every refusal a user can trigger is a `DrError`: a message that names what was
wrong and a hint that says what to do. The task layer turns it into exit code 1
with no traceback; Python callers catch it like any other exception.
"""

from __future__ import annotations


class DrError(Exception):
    """A refusal or failure the operator can act on."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  fix: {self.hint}"
        return self.message


class ConfigError(DrError):
    """A missing or malformed setting, found before any request is sent."""

    def __init__(self, key: str, problem: str, fix: str) -> None:
        super().__init__(f"config dr.{key}: {problem}", fix)
        self.key = key

    def __str__(self) -> str:
        # One line, as the design asks for config errors.
        return f"{self.message}; fix: {self.hint}"
