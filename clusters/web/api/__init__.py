"""The clusters part of the public REST API (``/api/v1/tenants/<slug>/…``)."""
