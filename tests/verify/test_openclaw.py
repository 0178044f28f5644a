"""Role openclaw: service user, private directories, secrets only in a 0600 file."""

import hashlib

from roles.openclaw import CONFIG_DIR, ENV_FILE, STATE_DIR, USER
from roles.secrets import env_file_content


def test_service_user_cannot_log_in(target):
    user = target.host.user(USER)
    assert user.exists
    assert user.shell in ("/usr/sbin/nologin", "/bin/false")
    assert user.uid < 1000, "a system user"
    assert "sudo" not in user.groups


def test_state_directory_is_private(target):
    state = target.host.file(STATE_DIR)
    assert state.is_directory and state.user == USER and state.mode == 0o700


def test_config_directory_is_closed_to_others(target):
    config = target.host.file(CONFIG_DIR)
    assert config.is_directory and config.user == "root" and config.group == USER and config.mode == 0o750


def test_secrets_file_is_0600_and_owned_by_the_service(target):
    env = target.host.file(ENV_FILE)
    assert env.is_file and env.user == USER and env.group == USER and env.mode == 0o600


def test_secrets_file_holds_the_current_secrets(target):
    # Compare hashes only: a failing assertion must not print a secret into a CI log.
    expected = hashlib.sha256(env_file_content(target.settings.secrets())).hexdigest()
    actual = target.host.check_output(f"sha256sum {ENV_FILE}").split()[0]
    assert actual == expected, "the secrets file differs from the settings (hashes compared, values not shown)"
