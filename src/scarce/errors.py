"""Errors the user can fix. The CLI prints them as one line and exits with status 2."""


class UserError(Exception):
    """A problem with the user's input (path, option, config value, data); the message says how to fix it."""


class Diverged(UserError):
    """Training produced a non-finite loss: the run is recorded as failed, never as done."""
