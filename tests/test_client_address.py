"""Which address the login throttle counts: pure logic of condorhub.auth.client_address.

The same rules are exercised for real through configurable-http-proxy in test_e2e_login_throttle.py.
"""

import ipaddress
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from tornado.httputil import HTTPHeaders

from condorhub.auth.client_address import client_address, parse_networks, request_client_address, throttle_key
from condorhub.site import SiteConfigError, validate_site_data

LB = parse_networks(["10.0.0.5/32", "192.168.7.0/24"])  # load balancers in front of the proxy


def ip(text):
    return ipaddress.ip_address(text)


def test_behind_the_local_proxy_the_client_is_the_entry_the_proxy_appended():
    # configurable-http-proxy appends the socket it accepted; what the client wrote stays left of it.
    assert client_address("127.0.0.1", "198.51.100.9, 203.0.113.7") == ip("203.0.113.7")


def test_a_client_chosen_entry_is_never_believed_without_a_trusted_proxy():
    # The client claims to be a load balancer's client; the entry right of it is the proxy's own.
    assert client_address("127.0.0.1", "192.0.2.1, 10.0.0.99") == ip("10.0.0.99")


def test_trusted_proxies_are_walked_past_from_the_right():
    assert client_address("127.0.0.1", "203.0.113.7, 10.0.0.5", LB) == ip("203.0.113.7")
    assert client_address("127.0.0.1", "6.6.6.6, 203.0.113.7, 192.168.7.3, 10.0.0.5", LB) == ip("203.0.113.7")


def test_a_direct_connection_is_counted_under_its_own_address_whatever_it_sends():
    assert client_address("203.0.113.50", "192.0.2.1", LB) == ip("203.0.113.50")


def test_a_proxy_on_another_host_is_believed_only_when_listed():
    assert client_address("10.0.0.5", "203.0.113.7", LB) == ip("203.0.113.7")
    assert client_address("10.0.0.6", "203.0.113.7", LB) == ip("10.0.0.6")


def test_the_hubs_own_address_is_this_machine():
    # hub_bind_url on a cluster address: the local proxy connects from that same address.
    assert client_address("10.1.2.3", "203.0.113.7", local="10.1.2.3") == ip("203.0.113.7")
    assert client_address("10.1.2.4", "203.0.113.7", local="10.1.2.3") == ip("10.1.2.4")


def test_no_header_or_only_trusted_hops_give_the_last_trusted_hop():
    assert client_address("127.0.0.1", None) == ip("127.0.0.1")
    assert client_address("127.0.0.1", "") == ip("127.0.0.1")
    assert client_address("127.0.0.1", "10.0.0.5", LB) == ip("10.0.0.5")


def test_garbage_stops_at_the_hop_that_wrote_it():
    assert client_address("127.0.0.1", "not-an-ip") == ip("127.0.0.1")
    assert client_address("127.0.0.1", "203.0.113.7, unknown, 10.0.0.5", LB) == ip("10.0.0.5")


def test_ipv4_mapped_and_bracketed_forms_are_normalised():
    # Node's dual-stack sockets report IPv4 clients as ::ffff:a.b.c.d.
    assert client_address("::ffff:127.0.0.1", "::ffff:203.0.113.7") == ip("203.0.113.7")
    assert client_address("::1", "[2001:db8::1]") == ip("2001:db8::1")
    assert client_address(None, "203.0.113.7") is None


def test_ipv6_clients_are_counted_by_their_64():
    assert throttle_key(ip("2001:db8:1:2::1")) == throttle_key(ip("2001:db8:1:2:ffff::9")) == "2001:db8:1:2::/64"
    assert throttle_key(ip("2001:db8:1:3::1")) != throttle_key(ip("2001:db8:1:2::1"))
    assert throttle_key(ip("203.0.113.7")) == "203.0.113.7"
    assert throttle_key(None) == "unknown"


def fake_request(peer, headers=None, local=None):
    """What tornado's HTTPServerRequest offers: the socket's peer and own address, the headers."""
    headers = HTTPHeaders(headers or {})
    sock = SimpleNamespace(getsockname=lambda: (local, 8081)) if local else None
    return SimpleNamespace(
        headers=headers,
        connection=SimpleNamespace(context=SimpleNamespace(address=(peer, 40000)), stream=SimpleNamespace(socket=sock)),
        remote_ip=headers.get("X-Real-Ip", peer),  # what tornado's xheaders make of it: must be ignored
    )


def test_from_a_request_x_real_ip_and_remote_ip_are_ignored():
    request = fake_request("127.0.0.1", {"X-Real-Ip": "192.0.2.1", "X-Forwarded-For": "192.0.2.1, 203.0.113.7"})
    assert request_client_address(request) == ip("203.0.113.7")


def test_from_a_request_repeated_headers_are_read_as_one_list():
    headers = HTTPHeaders()
    headers.add("X-Forwarded-For", "192.0.2.1")
    headers.add("X-Forwarded-For", "203.0.113.7")
    request = fake_request("127.0.0.1")
    request.headers = headers
    assert request_client_address(request) == ip("203.0.113.7")


def test_from_a_request_the_sockets_own_address_counts_as_this_machine():
    request = fake_request("10.1.2.3", {"X-Forwarded-For": "203.0.113.7"}, local="10.1.2.3")
    assert request_client_address(request) == ip("203.0.113.7")
    request = fake_request("10.1.2.3", {"X-Forwarded-For": "203.0.113.7"}, local="10.1.2.9")
    assert request_client_address(request) == ip("10.1.2.3")


def test_over_a_unix_socket_the_peer_is_this_machine():
    request = fake_request("127.0.0.1", {"X-Forwarded-For": "192.0.2.1, 203.0.113.7"})
    request.connection.context.address = b"/run/condorhub/hub.sock"
    assert request_client_address(request) == ip("203.0.113.7")
    request.headers = HTTPHeaders()
    assert request_client_address(request) is None


def test_bad_networks_are_refused_naming_them():
    with pytest.raises(ValueError, match="'10.0.0.1/8' is not an address or network"):
        parse_networks(["10.0.0.1/8"])
    with pytest.raises(ValueError, match="'proxy.example.org'"):
        parse_networks(["proxy.example.org"])


def minimal_site(**throttle):
    """The shipped example site file with these login_throttle settings."""
    data = yaml.safe_load((Path(__file__).parent.parent / "hub_config" / "site.example.yaml").read_text())
    data["login_throttle"] = throttle
    return data


def test_the_site_file_takes_trusted_proxies_and_refuses_bad_ones():
    site = validate_site_data(minimal_site(trusted_proxies=["10.0.0.5/32", "2001:db8::/48"]), "site.yaml")
    assert [str(n) for n in site.login_throttle.trusted_proxies] == ["10.0.0.5/32", "2001:db8::/48"]
    assert site.login_throttle.free_failures_per_address == 50
    with pytest.raises(SiteConfigError) as err:
        validate_site_data(minimal_site(trusted_proxies=["10.0.0.1/8"]), "site.yaml")
    (problem,) = err.value.problems
    assert problem.startswith("`login_throttle.trusted_proxies`: '10.0.0.1/8' is not an address or a network")
    assert "has host bits set" in problem and "10.0.0.0/24 for a network" in problem


def test_the_authenticator_refuses_a_bad_trusted_proxy():
    from condorhub.auth import CondorhubLDAPAuthenticator

    with pytest.raises(ValueError, match="'10.0.0.1/8'"):
        CondorhubLDAPAuthenticator(trusted_proxies=["10.0.0.1/8"])
