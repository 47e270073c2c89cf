"""Date and number formats in Swiss usage, one module per language of ``settings.LANGUAGES``
(``FORMAT_MODULE_PATH``): the pages speak German, French and Italian as they are written in
Switzerland (de-CH, fr-CH, it-CH); English keeps Django's dates, with en-CH numbers.

Amounts of money are formatted by ``portal.formatting.money``, which has its own separators:
Swiss amounts are written ``1'234.50`` even where other numbers use a decimal comma.
"""
