"""Errors that reach the user as one line on stderr."""


class UserError(Exception):
    """A mistake the user can fix (bad option, missing file...): printed as one line."""
