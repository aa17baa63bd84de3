"""The one exception users see: a single clear line, exit status 2."""


class BenchError(Exception):
    """A user-facing error: bad input, missing data or weights, unwritable output."""

    exit_code = 2
