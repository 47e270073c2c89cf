"""The API's documentation pages (Swagger UI and ReDoc, from drf-spectacular-sidecar's files)
under the portal's Content-Security-Policy.

Both pages run without inline script: Swagger UI's start-up script is fetched from the page's
own URL (``?script``, drf-spectacular's split view) and ReDoc's from a static file. What each
bundled library still needs beyond the site-wide policy is added to that page alone, below.
"""

from __future__ import annotations

from csp.constants import SELF, UNSAFE_INLINE
from csp.decorators import csp_update
from drf_spectacular.views import SpectacularRedocView, SpectacularSwaggerSplitView

# Swagger UI fits the site-wide policy as it is.
#
# drf-spectacular's single-page Swagger view also sends ``Cross-Origin-Opener-Policy:
# unsafe-none``, which only its OAuth2 pop-up sign-in needs; the portal's API takes bearer
# tokens, so the split view, which leaves that header to the SecurityMiddleware (same-origin),
# is used instead.
swagger_ui = SpectacularSwaggerSplitView.as_view(url_name="api:schema")

# ReDoc renders with styled-components, which writes its CSS into <style> elements at run time
# and gives a standalone page no way to put a nonce on them: inline style *elements* for this
# page only (style attributes stay refused; scripts stay 'self'). Its search index runs in a
# Web Worker built from a blob: URL of its own code. Its sidebar's "API docs by Redocly" logo
# is an image on redoc.ly: the policy blocks it (nothing off-site), and ReDoc then leaves it out.
redoc = csp_update({"style-src-elem": [SELF, UNSAFE_INLINE], "worker-src": ["blob:"]})(
    SpectacularRedocView.as_view(url_name="api:schema"))
