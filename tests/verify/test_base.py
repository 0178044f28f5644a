"""Role base: hostname and package downloads through the proxy."""

import re

import pytest

from roles.base import APT_PROXY


def test_hostname_is_set(target):
    if not target.settings.hostname:
        pytest.skip("no hostname in settings: the kit leaves it alone")
    assert target.host.check_output("hostname") == target.settings.hostname


def test_apt_uses_the_proxy_from_settings(target):
    proxy_file = target.host.file(APT_PROXY)
    if target.settings.proxy:
        assert proxy_file.is_file and proxy_file.user == "root" and proxy_file.mode == 0o644
        assert f'Acquire::http::Proxy "{target.settings.proxy}";' in proxy_file.content_string
        # apt itself must see it, not only the file on disk.
        assert re.search(r'Acquire::http::Proxy "[^"]+"', target.host.check_output("apt-config dump Acquire::http::Proxy"))
    else:
        assert not proxy_file.exists
