"""The portal's public REST API: authentication, limits, errors, pagination and the shared base
view that every endpoint (``clusters.web.api``, ``billing.web.api``, ``portal.api``) builds on."""
