"""Italian as written in Switzerland (it-CH; Django has no it_CH): day-first dates with points
(``5.1.2026`` short as ``05.01.2026``) and numbers as CLDR it-CH (``1'234.5``)."""

from django.conf.locale.it.formats import DATE_INPUT_FORMATS as _IT_DATE_INPUT_FORMATS
from django.conf.locale.it.formats import (  # noqa: F401 - the module is read by name
    DATETIME_INPUT_FORMATS,
    FIRST_DAY_OF_WEEK,
    TIME_FORMAT,
    YEAR_MONTH_FORMAT,
)

DATE_FORMAT = "j F Y"  # 25 ottobre 2006
DATETIME_FORMAT = "j F Y H:i"
MONTH_DAY_FORMAT = "j F"
SHORT_DATE_FORMAT = "d.m.Y"  # 25.10.2006
SHORT_DATETIME_FORMAT = "d.m.Y H:i"
DATE_INPUT_FORMATS = ["%d.%m.%Y", "%d.%m.%y", *_IT_DATE_INPUT_FORMATS]
DECIMAL_SEPARATOR = "."
THOUSAND_SEPARATOR = "'"
NUMBER_GROUPING = 3
