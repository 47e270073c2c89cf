"""The branding's images and stylesheet, served to anyone (the sign-in page shows them too).

Their URLs carry a version (``?v=``, a digest of what they serve): the current version is
cached by browsers for a year, anything else for a few minutes. The images are served with a
Content-Security-Policy that runs and loads nothing and as a sandbox, so an SVG opened on its
own (not as an ``<img>``) cannot act either.
"""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.templatetags.static import static
from django.utils.cache import patch_cache_control
from django.views.decorators.http import require_safe

from portal import branding

IMAGE_POLICY = "default-src 'none'; style-src 'unsafe-inline'; sandbox"
EXTENSIONS = {branding.PNG: "png", branding.SVG: "svg", branding.ICO: "ico"}


def _cache(response: HttpResponse, request: HttpRequest, version: str) -> HttpResponse:
    if version and request.GET.get("v") == version:
        patch_cache_control(response, public=True, max_age=31536000, immutable=True)
    else:
        patch_cache_control(response, public=True, max_age=300)
    return response


def _image(request: HttpRequest, kind: str) -> HttpResponse:
    data, content_type = branding.image(kind)
    if not data:
        raise Http404
    response = HttpResponse(data, content_type=content_type)
    response["Content-Security-Policy"] = IMAGE_POLICY
    response["Content-Disposition"] = f'inline; filename="{kind}.{EXTENSIONS[content_type]}"'
    version = (branding.current().logo_version if kind == "logo"
               else branding.current().favicon_version)
    return _cache(response, request, version)


@require_safe
def brand_logo(request: HttpRequest) -> HttpResponse:
    return _image(request, "logo")


@require_safe
def brand_favicon(request: HttpRequest) -> HttpResponse:
    if not branding.current().favicon_type:
        return HttpResponseRedirect(static("portal/img/favicon.svg"))
    return _image(request, "favicon")


@require_safe
def brand_stylesheet(request: HttpRequest) -> HttpResponse:
    brand = branding.current()
    response = HttpResponse(branding.stylesheet(brand), content_type="text/css; charset=utf-8")
    return _cache(response, request, brand.version)
