"""User-facing errors: one line naming the problem and what to do; the CLI exits 2 on them."""

from __future__ import annotations


class MmdeskError(Exception):
    """An expected failure caused by input, environment or configuration (never a bug).

    ``problem`` says what is wrong, ``hint`` what the user can do about it.
    """

    exit_code = 2

    def __init__(self, problem: str, hint: str = "") -> None:
        self.problem = problem
        self.hint = hint
        super().__init__(self.one_line())

    def one_line(self) -> str:
        return f"{self.problem}. {self.hint}".strip() if self.hint else self.problem


class MediaError(MmdeskError):
    """A clip or device that cannot be read."""


class ModelError(MmdeskError):
    """A model file that is missing, tampered with or does not match the manifest."""


class DeviceError(MmdeskError):
    """A camera, microphone or execution provider that is missing or was lost."""
