"""German as written in Switzerland (de-CH): Django's de_CH dates; numbers as CLDR de-CH
(``1'234.5``: apostrophe grouping, decimal point)."""

from django.conf.locale.de_CH.formats import (  # noqa: F401 - the module is read by name
    DATE_FORMAT,
    DATE_INPUT_FORMATS,
    DATETIME_FORMAT,
    DATETIME_INPUT_FORMATS,
    FIRST_DAY_OF_WEEK,
    MONTH_DAY_FORMAT,
    SHORT_DATE_FORMAT,
    SHORT_DATETIME_FORMAT,
    TIME_FORMAT,
    YEAR_MONTH_FORMAT,
)

DECIMAL_SEPARATOR = "."
THOUSAND_SEPARATOR = "'"
NUMBER_GROUPING = 3
