"""Every integer the app reads from a request (URL parts, query strings, form fields) is parsed here.

ASCII digits only (Python's int() also takes "٣" and "²"-like digits, and strings of thousands of digits), and
within the range of the database's INTEGER columns, so a number that cannot be an id is a 4xx at the edge and
never reaches the database as an out-of-range parameter.
"""
from __future__ import annotations

import re

from werkzeug.routing import BaseConverter, ValidationError

INT32_MAX = 2**31 - 1  # PostgreSQL INTEGER: every id column, and the largest page number of any list
DIGITS = re.compile("[0-9]{1,10}")


def parse_int(raw: str | int, minimum: int = 0, maximum: int = INT32_MAX) -> int:
    """`raw` as an int in minimum..maximum; raises ValueError with a message for the sender.

    An int passes through the range check (WTForms coerces its own choices' values with the same function).
    """
    valid = DIGITS.fullmatch(raw) if isinstance(raw, str) else type(raw) is int
    if not valid or not minimum <= int(raw) <= maximum:
        raise ValueError(f"expected a whole number {minimum}..{maximum} in ASCII digits, got {str(raw)[:20]!r}")
    return int(raw)


class BoundedIntConverter(BaseConverter):
    """`<int:...>` in every route: a number out of range is no route at all (404), like a non-number."""

    regex = "[0-9]+"
    part_isolating = True

    def to_python(self, value: str) -> int:
        try:
            return parse_int(value)
        except ValueError:
            raise ValidationError() from None

    def to_url(self, value: int) -> str:
        return str(int(value))
