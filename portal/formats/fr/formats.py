"""French as written in Switzerland (fr-CH): Django's fr_CH dates (``05.01.2026``); numbers as
CLDR fr-CH (``1 234,5`` with a narrow no-break space)."""

from django.conf.locale.fr_CH.formats import (  # noqa: F401 - the module is read by name
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

DECIMAL_SEPARATOR = ","
THOUSAND_SEPARATOR = "\u202f"
NUMBER_GROUPING = 3
