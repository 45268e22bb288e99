"""Exceptions a user can cause. Entry points turn them into one line and exit code 2."""

from __future__ import annotations


class InputError(ValueError):
    """Bad user input (missing/unreadable file, no face, bad option): say what and what to do."""


class OutputExistsError(InputError):
    """The output folder exists and overwriting was not requested."""
