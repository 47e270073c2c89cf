"""The SSRF rule: webhooks go to public HTTPS addresses only, checked when an endpoint is saved
and again, resolved, at every delivery; nothing the rule refuses is ever connected to."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from notifications import targets, transport
from notifications.models import DeliveryAttempt

NOT_PUBLIC = [
    "127.0.0.1", "127.8.9.10", "10.0.0.1", "10.255.255.254", "172.16.0.1", "192.168.1.1",
    "169.254.169.254", "169.254.0.1", "100.64.0.1", "100.100.100.200", "0.0.0.0",
    "224.0.0.1", "239.255.255.250", "240.0.0.1", "255.255.255.255", "192.0.2.10",
    "198.18.0.1", "::1", "::", "fe80::1", "fc00::1", "fd00:ec2::254", "ff02::1",
    "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254", "2002:7f00:1::1",
    "2002:a00:1::1", "64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe", "2001:0:4136:e378::1",
    "2001:db8::1", "::127.0.0.1",
]
PUBLIC = ["93.184.216.34", "1.1.1.1", "8.8.8.8", "2606:4700:4700::1111",
          "2a00:1450:4001:80b::200e", "::ffff:8.8.8.8", "2002:808:808::1", "64:ff9b::808:808"]


@pytest.mark.parametrize("address", NOT_PUBLIC)
def test_loopback_private_link_local_cgnat_multicast_reserved_and_metadata_are_refused(address):
    assert not targets.is_public(address)


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_are_allowed_in_every_spelling(address):
    assert targets.is_public(address)


@pytest.mark.parametrize(("url", "code"), [
    ("http://hooks.example.com/x", "https_only"),
    ("ftp://hooks.example.com/x", "https_only"),
    ("https://user:pw@hooks.example.com/x", "credentials"),
    ("https://token@hooks.example.com/x", "credentials"),
    ("https://hooks.example.com/" + "a" * 2000, "too_long"),
    ("https://127.0.0.1/hook", "not_public"),
    ("https://10.1.2.3/hook", "not_public"),
    ("https://169.254.169.254/latest/meta-data/", "not_public"),
    ("https://[::1]/hook", "not_public"),
    ("https://[::ffff:127.0.0.1]/hook", "not_public"),
    ("https://localhost/hook", "not_public"),
    ("https://api.localhost/hook", "not_public"),
    ("https://hooks.example.com/x#frag", "fragment"),
    ("https://hooks.example.com:99999/x", "invalid"),
    ("https:///nohost", "invalid"),
    ("https://hooks.example.com/a b", "invalid"),
    ("https://hooks.exämple.com/", "ascii"),
    ("", "required"),
])
def test_saving_refuses_what_the_url_alone_shows(url, code, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS_FOR_TESTS = False
    with pytest.raises(ValidationError) as refused:
        targets.check_url(url)
    assert refused.value.code == code


def test_a_public_https_url_is_kept_as_given():
    url = "https://hooks.example.com:8443/portal/events?source=portal"
    assert targets.check_url(f"  {url} ") == url


@pytest.mark.parametrize("host", ["127.0.0.1", "10.0.0.1", "169.254.169.254", "::1",
                                  "localhost"])
def test_sending_refuses_a_host_that_resolves_to_a_private_address(host, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS_FOR_TESTS = False
    with pytest.raises(targets.TargetRefused, match="not a public address"):
        targets.public_addresses(host, 443)


def test_the_production_rule_refuses_the_local_receiver_without_connecting(receiver, settings):
    """The same receiver the other tests reach is refused once the test allowance is off:
    the rule in force is the production one, and nothing reaches the receiver."""
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS_FOR_TESTS = False
    for url in (receiver.url("/ok"), receiver.url("/ok", host="127.0.0.1")):
        answer = transport.post(url, b"{}", {})
        assert answer.outcome == DeliveryAttempt.Outcome.REFUSED
        assert "not a public address" in answer.error
    assert receiver.received() == []


def test_the_allowance_is_honoured_only_by_the_test_settings(settings):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS_FOR_TESTS = True
    settings.TESTING = False
    assert not targets.private_targets_allowed()
    with pytest.raises(targets.TargetRefused):
        targets.public_addresses("127.0.0.1", 443)


def test_a_name_that_resolves_to_a_private_address_later_is_refused_at_send_time(
        monkeypatch, settings):
    """DNS rebinding: the name looked public when the endpoint was saved; at send time it
    resolves to the metadata address, and the delivery is refused without a connection."""
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS_FOR_TESTS = False
    answers = iter([[(2, 1, 6, "", ("93.184.216.34", 443))],
                    [(2, 1, 6, "", ("169.254.169.254", 443))]])
    monkeypatch.setattr(targets.socket, "getaddrinfo", lambda *a, **k: next(answers))
    assert targets.check_url("https://rebind.example.com/hook")
    assert targets.public_addresses("rebind.example.com", 443) == ["93.184.216.34"]
    answer = transport.post("https://rebind.example.com/hook", b"{}", {})
    assert answer.outcome == DeliveryAttempt.Outcome.REFUSED
    assert "169.254.169.254" in answer.error


def test_one_private_answer_among_public_ones_refuses_the_name(monkeypatch, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS_FOR_TESTS = False
    monkeypatch.setattr(targets.socket, "getaddrinfo", lambda *a, **k: [
        (2, 1, 6, "", ("93.184.216.34", 443)), (10, 1, 6, "", ("::1", 443, 0, 0))])
    with pytest.raises(targets.TargetRefused, match="::1"):
        targets.public_addresses("mixed.example.com", 443)


def test_the_connection_goes_to_the_checked_address_with_the_name_for_tls(receiver,
                                                                          monkeypatch):
    """Pinning: the socket is opened to the address that was checked, while TLS verifies
    the certificate of the name and the Host header carries it."""
    opened: list[tuple[str, int]] = []
    real = transport.socket.create_connection

    def spy(address, *args, **kwargs):
        opened.append(address)
        return real(address, *args, **kwargs)

    monkeypatch.setattr(transport.socket, "create_connection", spy)
    answer = transport.post(receiver.url("/ok"), b'{"a": 1}', {})
    assert answer.ok, answer
    assert opened and opened[0][0] in ("127.0.0.1", "::1")
    assert receiver.received("/ok")[-1].headers["Host"] == f"localhost:{receiver.port}"


def test_redirects_are_not_followed(receiver):
    answer = transport.post(receiver.url("/redirect"), b"{}", {})
    assert answer.outcome == DeliveryAttempt.Outcome.REDIRECT and answer.status_code == 302
    assert len(receiver.received()) == 1


def test_a_slow_receiver_times_out(receiver):
    answer = transport.post(receiver.url("/slow"), b"{}", {})
    assert answer.outcome == DeliveryAttempt.Outcome.TIMEOUT


def test_only_the_first_kilobyte_of_a_large_answer_is_kept(receiver):
    answer = transport.post(receiver.url("/big"), b"{}", {})
    assert answer.ok and answer.excerpt == "x" * 1024


def test_an_untrusted_certificate_fails_the_attempt(receiver, settings):
    settings.WEBHOOK_CA_FILE = ""
    answer = transport.post(receiver.url("/ok"), b"{}", {})
    assert answer.outcome == DeliveryAttempt.Outcome.TLS_ERROR
    assert receiver.received() == []


def test_a_closed_port_is_a_connection_error(receiver):
    from tests.fixtures.processes import free_port

    answer = transport.post(f"https://127.0.0.1:{free_port()}/x", b"{}", {})
    assert answer.outcome == DeliveryAttempt.Outcome.CONNECTION_ERROR
