"""Errors a user can cause: the CLI prints their message on one line and exits with code 2."""


class UserError(Exception):
    """Bad input that the user can fix (path, model, lexicon, shapes, ...). Never a bug."""
