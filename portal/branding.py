"""The portal's branding: product name, logo, favicon, primary colour, support contacts and
the legal footer, as staff set them in the admin (``Branding``), else from the settings.

Pages read it through ``current()`` on every render: from the shared cache, else the
database. ``do_update_branding`` (``portal.actions``)
drops both once a change commits.

Uploaded images are checked here before they are stored: a PNG (or an ICO favicon) must be
what Pillow reads as one, within a size; an SVG is parsed and rebuilt from the elements and
attributes that draw, without scripts, event handlers, foreign content, animations, links or
references outside the document. The portal shows them only as images (``<img>``, the icon
link) and serves them with a policy that runs and loads nothing, so even an SVG this filter
missed a trick in cannot act.
"""

from __future__ import annotations

import hashlib
import io
import re
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db.utils import DatabaseError
from django.templatetags.static import static
from django.urls import reverse
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from PIL import Image, UnidentifiedImageError

from portal.models import Branding

CACHE_KEY = "portal:branding:v1"
CACHE_SECONDS = 300
PNG, SVG, ICO = "image/png", "image/svg+xml", "image/x-icon"
LOGO_TYPES = (PNG, SVG)
FAVICON_TYPES = (PNG, SVG, ICO)
MAX_PIXELS_SIDE = 2048
DEFAULT_COLOUR = "#066fd1"  # Tabler's primary

# --------------------------------------------------------------------------- what pages read


@dataclass(frozen=True)
class Brand:
    custom_name: str
    primary_colour: str
    support_email: str
    support_url: str
    legal_footer: str
    logo_type: str
    logo_version: str
    favicon_type: str
    favicon_version: str

    @property
    def name(self) -> str:
        """The product name: staff's, the setting's, or the portal's own (translated)."""
        return self.custom_name or gettext("Kubernetes portal")

    @property
    def version(self) -> str:
        digest = hashlib.sha256("|".join([self.primary_colour, self.logo_version,
                                          self.favicon_version]).encode())
        return digest.hexdigest()[:12]

    @property
    def logo_url(self) -> str:
        if not self.logo_type:
            return ""
        return f"{reverse('brand_logo')}?v={self.logo_version}"

    @property
    def favicon_url(self) -> str:
        if not self.favicon_type:
            return static("portal/img/favicon.svg")
        return f"{reverse('brand_favicon')}?v={self.favicon_version}"

    @property
    def stylesheet_url(self) -> str:
        return f"{reverse('brand_stylesheet')}?v={self.version}"

    @property
    def legal_lines(self) -> list[str]:
        return [line for line in self.legal_footer.splitlines() if line.strip()]

    @property
    def has_support(self) -> bool:
        return bool(self.support_email or self.support_url)


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:12] if data else ""


def _setting(name: str, default: str = "") -> str:
    return str(getattr(settings, name, default) or default)


def _colour(value: str) -> str:
    value = value.strip().lower()
    return value if re.fullmatch(r"#[0-9a-f]{6}", value) else DEFAULT_COLOUR


def _load() -> Brand:
    try:
        row = Branding.objects.filter(pk=Branding.SINGLETON).first()
    except DatabaseError:  # before migrations (a first `check`): the settings alone
        row = None
    logo = bytes(row.logo) if row is not None and row.logo_type else b""
    favicon = bytes(row.favicon) if row is not None and row.favicon_type else b""

    def pick(field: str, setting: str, default: str = "") -> str:
        value = getattr(row, field, "") if row is not None else ""
        return str(value or _setting(setting, default))

    return Brand(
        custom_name=pick("product_name", "BRAND_PRODUCT_NAME"),
        primary_colour=_colour(pick("primary_colour", "BRAND_PRIMARY_COLOUR", DEFAULT_COLOUR)),
        support_email=pick("support_email", "BRAND_SUPPORT_EMAIL"),
        support_url=pick("support_url", "BRAND_SUPPORT_URL"),
        legal_footer=pick("legal_footer", "BRAND_LEGAL_FOOTER"),
        logo_type=row.logo_type if logo and row is not None else "",
        logo_version=_digest(logo),
        favicon_type=row.favicon_type if favicon and row is not None else "",
        favicon_version=_digest(favicon),
    )


def current() -> Brand:
    """The branding in force, from the shared cache (one read per page) or the database.

    The cache holds plain values, not the object: during a rolling deploy, processes of two
    releases share it, and a shape one of them does not know is simply read again."""
    cached = cache.get(CACHE_KEY)
    if isinstance(cached, dict):
        try:
            return Brand(**cached)
        except TypeError:
            pass
    brand = _load()
    cache.set(CACHE_KEY, asdict(brand), CACHE_SECONDS)
    return brand


def forget() -> None:
    """Drop the cached branding (after a change commits)."""
    cache.delete(CACHE_KEY)


def image(kind: str) -> tuple[bytes, str]:
    """The stored logo or favicon and its type (empty when none)."""
    row = Branding.objects.filter(pk=Branding.SINGLETON).only(kind, f"{kind}_type").first()
    if row is None or not getattr(row, f"{kind}_type"):
        return b"", ""
    return bytes(getattr(row, kind)), str(getattr(row, f"{kind}_type"))


# --------------------------------------------------------------------------- the stylesheet


def _rgb(colour: str) -> tuple[int, int, int]:
    value = colour.lstrip("#")
    return int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16)


def readable_on(colour: str) -> str:
    """Black or white, whichever reads better on ``colour`` (WCAG relative luminance)."""
    def channel(c: int) -> float:
        s = c / 255
        return s / 12.92 if s <= 0.03928 else ((s + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(c) for c in _rgb(colour))
    luminance = 0.2126 * r + 0.7152 * g + 0.0722 * b
    return "#000000" if luminance > 0.179 else "#ffffff"


def stylesheet(brand: Brand) -> str:
    """The CSS custom properties that carry the brand into Tabler's components (a stylesheet
    served by the portal: the Content-Security-Policy allows no inline style)."""
    colour = brand.primary_colour if re.fullmatch(r"#[0-9a-f]{6}", brand.primary_colour) \
        else DEFAULT_COLOUR
    r, g, b = _rgb(colour)
    return (
        ":root, [data-bs-theme=light] {\n"
        f"  --portal-primary: {colour};\n"
        f"  --tblr-primary: {colour};\n"
        f"  --tblr-primary-rgb: {r}, {g}, {b};\n"
        f"  --tblr-primary-fg: {readable_on(colour)};\n"
        f"  --tblr-link-color: {colour};\n"
        f"  --tblr-link-color-rgb: {r}, {g}, {b};\n"
        "}\n"
        ".navbar-brand-image { height: 2rem; width: auto; }\n"
    )


# --------------------------------------------------------------------------- uploads


def _refuse(message: Any) -> ValidationError:
    return ValidationError(message, code="invalid_image")


def _raster(data: bytes, allowed: tuple[str, ...]) -> str:
    formats = {"PNG": PNG, "ICO": ICO}
    try:
        with Image.open(io.BytesIO(data)) as img:
            content_type = formats.get(str(img.format))
            if content_type not in allowed:
                raise _refuse(_("Upload a PNG or SVG image."))
            width, height = img.size
            if not (0 < width <= MAX_PIXELS_SIDE and 0 < height <= MAX_PIXELS_SIDE):
                raise _refuse(_("The image may be at most %(n)s pixels wide and high.")
                              % {"n": MAX_PIXELS_SIDE})
            img.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        raise _refuse(_("This file is not a readable image.")) from None
    return content_type or ""


def clean_image(data: bytes, *, kind: str) -> tuple[bytes, str]:
    """The bytes to store for an uploaded logo or favicon and their content type, or a
    ``ValidationError`` a person can act on."""
    limit = int(getattr(settings, "BRAND_MAX_IMAGE_BYTES", 256 * 1024))
    if not data:
        raise _refuse(_("The file is empty."))
    if len(data) > limit:
        raise _refuse(_("The image may be at most %(kb)s KB.") % {"kb": limit // 1024})
    allowed = LOGO_TYPES if kind == "logo" else FAVICON_TYPES
    head = data[:512].lstrip()
    if head.startswith((b"<?xml", b"<svg", b"<!--", b"<!DOCTYPE", b"<!doctype")):
        return sanitize_svg(data), SVG
    return data, _raster(data, allowed)


SVG_NS = "http://www.w3.org/2000/svg"
XLINK_NS = "http://www.w3.org/1999/xlink"
XML_NS = "http://www.w3.org/XML/1998/namespace"
ALLOWED_ELEMENTS = frozenset({
    "svg", "g", "defs", "symbol", "use", "title", "desc", "style", "path", "rect", "circle",
    "ellipse", "line", "polyline", "polygon", "text", "tspan", "linearGradient",
    "radialGradient", "stop", "clipPath", "mask", "pattern", "filter", "feGaussianBlur",
    "feOffset", "feBlend", "feColorMatrix", "feFlood", "feComposite", "feMerge", "feMergeNode",
})
_UNSAFE_CSS = re.compile(r"@import|expression\s*\(|javascript:|url\s*\(\s*['\"]?\s*(?!#)",
                         re.IGNORECASE)
_UNSAFE_VALUE = re.compile(r"javascript:|data:|vbscript:", re.IGNORECASE)


def _local_name(tag: str) -> tuple[str, str]:
    if tag.startswith("{"):
        namespace, _sep, name = tag[1:].partition("}")
        return namespace, name
    return "", tag


def _clean_element(element: ET.Element) -> None:
    for child in list(element):
        namespace, name = _local_name(child.tag) if isinstance(child.tag, str) else ("", "")
        if namespace != SVG_NS or name not in ALLOWED_ELEMENTS:
            element.remove(child)
            continue
        if name == "style" and _UNSAFE_CSS.search(child.text or ""):
            element.remove(child)
            continue
        _clean_attributes(child)
        _clean_element(child)


def _clean_attributes(element: ET.Element) -> None:
    for key in list(element.attrib):
        namespace, name = _local_name(key)
        value = element.attrib[key]
        keep = namespace in ("", XML_NS) or (namespace == XLINK_NS and name == "href")
        if name.lower().startswith("on") or (name == "href" and not value.startswith("#")):
            keep = False
        if name == "style" and _UNSAFE_CSS.search(value):
            keep = False
        if _UNSAFE_VALUE.search(value) or ("url(" in value.replace(" ", "")
                                           and "url(#" not in value.replace(" ", "")):
            keep = False
        if not keep:
            del element.attrib[key]


def sanitize_svg(data: bytes) -> bytes:
    """An SVG rebuilt from what draws: see the module's docstring."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise _refuse(_("Save the SVG image as UTF-8.")) from None
    if re.search(r"<!ENTITY", text, re.IGNORECASE):
        raise _refuse(_("SVG files with entity declarations are not accepted."))
    try:
        # No entity is declared (refused above), and expat never fetches an external DTD:
        # nothing is left for an XML bomb or an external entity to use.
        root = ET.fromstring(data)  # noqa: S314
    except ET.ParseError:
        raise _refuse(_("This file is not a readable SVG image.")) from None
    if _local_name(root.tag) != (SVG_NS, "svg"):
        raise _refuse(_("This file is not an SVG image (its root must be an svg element in "
                        "the SVG namespace)."))
    _clean_attributes(root)
    _clean_element(root)
    ET.register_namespace("", SVG_NS)
    ET.register_namespace("xlink", XLINK_NS)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)
