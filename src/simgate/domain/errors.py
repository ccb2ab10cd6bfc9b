"""Domain errors: each one is a rule the caller broke, never an I/O failure."""


class DomainError(Exception):
    """A request that breaks a rule; the edge renders it as a 4xx with this message."""


class InvalidPrefix(DomainError):
    pass


class InvalidNumber(DomainError):
    pass


class ClaimConflict(Exception):
    """Another transaction took the number between finding and claiming it.

    Not a DomainError: it means a storage guard fired, and the unit of work must roll back.
    """
