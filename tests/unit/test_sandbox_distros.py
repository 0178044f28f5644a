"""The sandbox's choice of distros and the apt sources its images get (no containers needed)."""

import pytest

import sandbox


def test_one_distro_for_all_hosts_or_one_per_host():
    assert [s["distro"] for s in sandbox.host_specs(3)] == ["debian13"] * 3
    assert [s["distro"] for s in sandbox.host_specs(2, "ubuntu2404")] == ["ubuntu2404"] * 2
    specs = sandbox.host_specs(2, ["debian12", "ubuntu2404"], root_login=[True, False])
    assert specs == [{"distro": "debian12", "root_login": True}, {"distro": "ubuntu2404", "root_login": False}]


@pytest.mark.parametrize("distros, message", [
    (["debian11"], "--distro 'debian11': unknown distro; choose from debian12, debian13, ubuntu2404"),
    (["ubuntu2204"], "--distro 'ubuntu2204': unknown distro"),
    (["debian12", "debian13"], "--distro gives 2 values for 3 hosts"),
])
def test_an_unknown_distro_or_a_wrong_count_is_refused(distros, message):
    with pytest.raises(sandbox.SandboxError, match="^" + message.replace("(", r"\(")):
        sandbox.host_specs(3, distros)


def test_the_cli_refuses_an_unknown_distro_before_anything(capsys):
    from sandbox.__main__ import main

    assert main(["up", "--hosts", "1", "--distro", "debian11"]) == 1
    assert "unknown distro" in capsys.readouterr().err


@pytest.mark.parametrize("distro, file, lines", [
    ("debian13", "debian.sources", ["URIs: http://mirror/debian", "Suites: trixie trixie-updates", "Components: main",
                                    "URIs: http://mirror/debian-security", "Suites: trixie-security"]),
    ("ubuntu2404", "ubuntu.sources", ["Suites: noble noble-updates", "Suites: noble-security",
                                      "Components: main restricted universe multiverse",
                                      "Signed-By: /usr/share/keyrings/ubuntu-archive-keyring.gpg"]),
])
def test_images_have_main_updates_and_security_like_a_cloud_image(distro, file, lines):
    name, text = sandbox.apt_sources(sandbox.DISTROS[distro], "http://mirror/debian", "http://mirror/debian-security")
    assert name == file
    assert all(line in text.splitlines() for line in lines)
