"""Named shapes in the marketplace's own vocabulary.

NewTypes cost nothing at run time but let mypy catch a service name passed where a country
was expected: the three are all plain strings on the wire.
"""

from typing import NewType

PhoneNumber = NewType("PhoneNumber", str)
"""International digits with the country code and no '+', e.g. '79088081050' (spec 2)."""

CountryName = NewType("CountryName", str)
"""Onlinesim country name, lower case, e.g. 'germany'."""

OperatorName = NewType("OperatorName", str)
"""Onlinesim operator name, lower case; '' means unknown (counted under 'any' only)."""

ServiceName = NewType("ServiceName", str)
"""Onlinesim service name, lower case, e.g. 'facebook'."""

OperationId = NewType("OperationId", int)
"""Our operation id, sent to Onlinesim as `activationId`; >= 1 and never reused."""

NumberId = NewType("NumberId", int)

Kopecks = NewType("Kopecks", int)
"""Money in RUB hundredths: floats drift, and the marketplace pays in RUB with 2 decimals."""

Timestamp = float
"""Seconds since the epoch, UTC. Passed in by the caller so the domain never reads a clock."""

MAX_ID = 2**63 - 1
"""Ids are 64-bit in both databases: a larger one names nothing and must not reach SQL."""

ANY_OPERATOR = OperatorName("any")
RENT_SERVICE = ServiceName("rent")

EVERYWHERE = "*"
"""An exclusion's marketplace scope when it binds every marketplace (a sale, a refusal)."""
