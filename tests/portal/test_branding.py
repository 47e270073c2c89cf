"""Branding: staff set the product name, logo, favicon, colour, support contacts and legal
footer in the admin; every page (and the sign-in page) shows them; empty fields fall back to
the settings; uploaded images are checked and SVGs rebuilt so that they cannot run anything."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import translation
from PIL import Image

from portal import branding
from portal.models import Branding
from tests.staffing import audit

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
ADD_URL = "/admin/portal/branding/add/"


def png(width: int = 40, height: int = 20, colour: str = "#ff0000") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, format="PNG")
    return out.getvalue()


SVG_LOGO = b"""<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"
     xmlns:inkscape="http://www.inkscape.org/namespaces/inkscape" viewBox="0 0 100 30"
     onload="alert(1)" inkscape:version="1.3">
  <script>alert(document.cookie)</script>
  <defs><linearGradient id="g"><stop offset="0" stop-color="#123456"/></linearGradient></defs>
  <rect width="100" height="30" fill="url(#g)" onclick="alert(2)"/>
  <a href="javascript:alert(3)"><text x="5" y="20">ACME</text></a>
  <image href="https://tracker.example/pixel.png" width="1" height="1"/>
  <use xlink:href="https://evil.example/sprite.svg#x"/>
  <use xlink:href="#g"/>
  <foreignObject><div xmlns="http://www.w3.org/1999/xhtml">hi</div></foreignObject>
  <style>@import url(https://evil.example/x.css);</style>
  <style>.b { fill: #abcdef }</style>
  <circle cx="5" cy="5" r="2" style="fill: url(https://evil.example/p)" class="b"/>
  <set attributeName="href" to="javascript:alert(4)"/>
  <text x="50" y="20">Cloud</text>
</svg>"""


def branding_post(client, **fields):
    data = {"product_name": "", "primary_colour": "", "support_email": "", "support_url": "",
            "legal_footer": "", **fields}
    row = Branding.objects.filter(pk=1).first()
    url = reverse("admin:portal_branding_change", args=[1]) if row else ADD_URL
    return client.post(url, data)


@pytest.fixture
def staff(client_for, staff_with_mfa):
    return client_for(staff_with_mfa)


# --------------------------------------------------------------------------- templates


def test_no_template_hard_codes_the_product_name():
    offenders = [str(path.relative_to(TEMPLATES)) for path in TEMPLATES.rglob("*")
                 if path.suffix in {".html", ".txt"}
                 and re.search(r"kubernetes portal", path.read_text(), re.IGNORECASE)]
    assert offenders == []


def test_pages_show_the_portals_own_name_by_default(client, db):
    response = client.get(reverse("account_login"))
    assert "<title>Sign In" in response.content.decode() or response.status_code == 200
    html = response.content.decode()
    assert "Kubernetes portal" in html
    assert reverse("brand_stylesheet") in html
    with translation.override("fr"):
        assert branding.current().name == "Portail Kubernetes"


def test_the_settings_name_the_product_when_staff_have_not(client, db, settings):
    settings.BRAND_PRODUCT_NAME = "Alpine Kube"
    settings.BRAND_SUPPORT_EMAIL = "help@alpine.example"
    settings.BRAND_LEGAL_FOOTER = "Alpine Cloud AG · Zürich"
    html = client.get(reverse("account_login")).content.decode()
    assert "Alpine Kube" in html and "Kubernetes portal" not in html
    assert 'href="mailto:help@alpine.example"' in html
    assert "Alpine Cloud AG · Zürich" in html


# --------------------------------------------------------------------------- the admin


def test_staff_brand_the_portal_and_every_page_shows_it_at_once(
        staff, client, owner, django_capture_on_commit_callbacks):
    assert "Kubernetes portal" in client.get(reverse("account_login")).content.decode()
    with django_capture_on_commit_callbacks(execute=True):  # the cached branding goes then
        response = branding_post(staff, product_name="Helvetia Kubernetes",
                                 primary_colour="#C8102E",
                                 support_email="support@helvetia.example",
                                 support_url="https://help.helvetia.example/",
                                 legal_footer="Helvetia Cloud SA\nCHE-123.456.789 TVA")
    assert response.status_code == 302, response.content.decode()[:2000]
    html = client.get(reverse("account_login")).content.decode()
    assert "<title>" in html and "Helvetia Kubernetes" in html
    assert "Kubernetes portal" not in html
    assert "https://help.helvetia.example/" in html and "CHE-123.456.789 TVA" in html
    css = client.get(branding.current().stylesheet_url)
    assert css["Content-Type"].startswith("text/css")
    text = css.content.decode()
    assert "--tblr-primary: #c8102e;" in text and "--tblr-primary-rgb: 200, 16, 46;" in text
    assert "--tblr-primary-fg: #ffffff;" in text
    entry, = audit("branding.create")
    assert entry.changes["product_name"] == [None, "Helvetia Kubernetes"]


@pytest.mark.parametrize(("field", "value"), [
    ("primary_colour", "red"), ("primary_colour", "#12345"), ("primary_colour", "#12345g"),
    ("support_url", "http://help.example/"), ("support_email", "not an email"),
    ("product_name", "Evil\u202eCorp"), ("legal_footer", "ok\nbad\u200b"),
])
def test_bad_branding_is_refused_by_its_field(staff, db, field, value):
    response = branding_post(staff, **{field: value})
    assert response.status_code == 200
    assert field in response.context["adminform"].form.errors
    assert not Branding.objects.exists()


def test_a_png_logo_is_stored_served_and_shown(staff, client, db):
    data = png()
    response = staff.post(ADD_URL, {"product_name": "ACME", "primary_colour": "",
                                    "logo_file": SimpleUploadedFile("logo.png", data)})
    assert response.status_code == 302
    brand = branding.current()
    assert brand.logo_type == "image/png" and brand.logo_url
    html = client.get(reverse("account_login")).content.decode()
    assert f'<img src="{brand.logo_url}" alt="ACME"' in html.replace("&amp;", "&")
    served = client.get(brand.logo_url)
    assert served.status_code == 200 and served.content == data
    assert served["Content-Type"] == "image/png"
    assert "immutable" in served["Cache-Control"]
    assert "sandbox" in served["Content-Security-Policy"]
    entry, = audit("branding.create")
    assert entry.changes["logo_file"] == [None, f"image/png, {len(data)} bytes"]


def test_an_svg_logo_is_rebuilt_without_anything_that_acts_or_loads(staff, client, db):
    response = staff.post(ADD_URL, {"logo_file": SimpleUploadedFile("logo.svg", SVG_LOGO)})
    assert response.status_code == 302
    served = client.get(branding.current().logo_url)
    assert served["Content-Type"] == "image/svg+xml"
    assert served["Content-Security-Policy"].startswith("default-src 'none'")
    assert served["X-Content-Type-Options"] == "nosniff"
    svg = served.content.decode()
    for gone in ("script", "onload", "onclick", "javascript", "foreignObject", "<image",
                 "tracker.example", "evil.example", "@import", "<set", "inkscape", "<a ",
                 "ACME"):  # a link goes, with what it holds
        assert gone not in svg, gone
    for kept in ("Cloud", 'fill="url(#g)"', "linearGradient", ".b { fill: #abcdef }",
                 'xlink:href="#g"'):
        assert kept in svg, kept


@pytest.mark.parametrize(("name", "data", "message"), [
    ("logo.png", b"GIF89a not a png", "not a readable image"),
    ("logo.png", b"", "empty"),
    ("logo.svg", b'<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY a "aaaa">]>'
                 b'<svg xmlns="http://www.w3.org/2000/svg">&a;</svg>', "entity"),
    ("logo.svg", b"<svg><rect/></svg>", "not an SVG image"),
    ("logo.svg", b'<svg xmlns="http://www.w3.org/2000/svg"><rect', "not a readable SVG"),
    ("logo.gif", b"GIF89a\x01\x00\x01\x00\x00\x00\x00;", "not a readable image"),
])
def test_a_bad_image_is_refused_with_a_reason(staff, db, name, data, message):
    response = staff.post(ADD_URL, {"logo_file": SimpleUploadedFile(name, data)})
    assert response.status_code == 200
    errors = " ".join(response.context["adminform"].form.errors.get("logo_file", []))
    assert message in errors
    assert not Branding.objects.exists()


def test_an_image_over_the_size_limit_is_refused(staff, db, settings):
    settings.BRAND_MAX_IMAGE_BYTES = 2048
    response = staff.post(ADD_URL, {"logo_file": SimpleUploadedFile("big.png", png(400, 400,
                                                                                   "#123456")
                                                                     + b"\0" * 4096)})
    assert response.status_code == 200
    assert "at most 2 KB" in " ".join(response.context["adminform"].form.errors["logo_file"])


def test_an_image_too_large_in_pixels_is_refused():
    with pytest.raises(Exception, match="at most 2048 pixels"):
        branding.clean_image(png(3000, 10), kind="logo")


def test_the_favicon_is_the_portals_until_staff_upload_one(staff, client, db,
                                                           django_capture_on_commit_callbacks):
    response = client.get("/favicon.ico")
    assert response.status_code == 302 and response["Location"].endswith("favicon.svg")
    icon = io.BytesIO()
    Image.new("RGB", (32, 32), "#00ff00").save(icon, format="ICO")
    with django_capture_on_commit_callbacks(execute=True):  # the cached branding goes then
        staff.post(ADD_URL, {"favicon_file": SimpleUploadedFile("f.ico", icon.getvalue())})
    brand = branding.current()
    assert brand.favicon_type == "image/x-icon"
    assert f'<link rel="icon" href="{brand.favicon_url}">' in client.get(
        reverse("account_login")).content.decode().replace("&amp;", "&")
    assert client.get("/favicon.ico").content == icon.getvalue()


def test_removing_the_logo_goes_back_to_the_name(staff, client, db,
                                                 django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        staff.post(ADD_URL, {"product_name": "ACME",
                             "logo_file": SimpleUploadedFile("l.png", png())})
    assert branding.current().logo_type
    with django_capture_on_commit_callbacks(execute=True):
        response = branding_post(staff, product_name="ACME", clear_logo="on")
    assert response.status_code == 302
    assert branding.current().logo_url == ""
    assert client.get(reverse("brand_logo")).status_code == 404


def test_there_is_one_branding_row(staff, db):
    branding_post(staff, product_name="One")
    assert staff.get(ADD_URL).status_code == 403
    listing = staff.get("/admin/portal/branding/")
    assert listing.status_code == 302 and listing["Location"].endswith("/branding/1/change/")


def test_branding_pages_answer_only_reads(client, db):
    for name in ("brand_logo", "brand_favicon", "brand_stylesheet"):
        assert client.post(reverse(name)).status_code == 405


def test_the_colour_readable_on_the_primary():
    assert branding.readable_on("#ffff00") == "#000000"
    assert branding.readable_on("#003366") == "#ffffff"


def test_account_emails_carry_the_product_name(client, user, settings):
    from django.core import mail

    settings.BRAND_PRODUCT_NAME = "Alpine Kube"
    client.post(reverse("account_reset_password"), {"email": user.email})
    assert mail.outbox and mail.outbox[-1].subject.startswith("[Alpine Kube] ")
