"""URL converters. A database id in a path is at most 18 digits: a longer number cannot be a row
and would overflow the database's integer type (a 500) instead of a clean 404."""

from django.urls import register_converter


class IdConverter:
    regex = "[0-9]{1,18}"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value: int) -> str:
        return str(value)


register_converter(IdConverter, "id")
