"""Errors the CLI turns into one line on stderr and exit code 2."""


class HarnessError(Exception):
    """Bad input or a broken environment: printed as one line, exit code 2."""
