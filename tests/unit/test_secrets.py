"""Secrets: masked in every representation, resolved from env then .env, never in pyinfra output."""

import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from openclaw_kit import secrets
from openclaw_kit.secrets import Secret, env_file_content, generate_token, read_dotenv, reference_name
from tests.unit.fake_host import fake_inventory

REPO = Path(__file__).resolve().parents[2]
SENTINEL_TOKEN = "SENTINELgw" + "0" * 40
SENTINEL_BOT = "SENTINELbot:123456"


def test_secret_never_shows_its_value():
    secret = Secret("GATEWAY", "s3cr3t-value")
    for shown in (str(secret), repr(secret), f"{secret}", f"{secret!r}", "%s" % secret, repr([secret]), repr({"k": secret})):
        assert "s3cr3t" not in shown
        assert "GATEWAY" in shown
    assert secret.reveal() == "s3cr3t-value"
    with pytest.raises(TypeError):
        pickle.dumps(secret)


def test_reference_syntax():
    assert reference_name("${OPENCLAW_GATEWAY_TOKEN}") == "OPENCLAW_GATEWAY_TOKEN"
    for value in ("$OPENCLAW", "${lower}", "prefix-${VAR}", "${VAR}-suffix", "plain", 42, None):
        assert reference_name(value) is None


def test_dotenv_parsing(tmp_path):
    dotenv = tmp_path / ".env"
    dotenv.write_text("# comment\nA=1\nexport B='two words'\nC=\"three\"\n\nnot a pair\nD=x=y\n")
    assert read_dotenv(dotenv) == {"A": "1", "B": "two words", "C": "three", "D": "x=y"}
    assert read_dotenv(tmp_path / "missing") == {}


def test_environment_wins_over_dotenv(tmp_path, monkeypatch):
    dotenv = tmp_path / ".env"
    dotenv.write_text("KIT_TEST_ONE=from-file\nKIT_TEST_TWO=from-file\n")
    monkeypatch.setenv("KIT_TEST_ONE", "from-env")
    env = secrets.controller_env(dotenv)
    assert env["KIT_TEST_ONE"] == "from-env" and env["KIT_TEST_TWO"] == "from-file"


def test_env_file_content_quotes_and_refuses_injection():
    assert env_file_content({"A": Secret("A", "x y")}) == b"A='x y'\n"
    with pytest.raises(ValueError) as caught:
        env_file_content({"A": Secret("A", "x\nEVIL=1")})
    assert "EVIL" not in str(caught.value)


def test_generated_token_is_32_random_bytes_hex():
    token = generate_token()
    assert len(token) == 64 and int(token, 16) >= 0 and token != generate_token()


FAKE_INVENTORY = fake_inventory(channels={"telegram": {"bot_token": "${TELEGRAM_BOT_TOKEN}", "allow_from": [1]}})


@pytest.mark.parametrize("flags", [["-v"], ["-vvv"], ["--debug"], ["--diff"], ["--diff", "-vvv", "--debug"], ["--debug-operations"], ["--json"], ["--dry", "--json"]])
def test_no_secret_in_pyinfra_output_on_a_fake_host(tmp_path, flags):
    """The whole deploy, planned and run against pyinfra's fake connector; the real-host twin is in tests/integration."""
    inventory = tmp_path / "fake_inventory.py"
    inventory.write_text(FAKE_INVENTORY)
    env = {**os.environ, "OPENCLAW_GATEWAY_TOKEN": SENTINEL_TOKEN, "TELEGRAM_BOT_TOKEN": SENTINEL_BOT}
    run = subprocess.run(
        [sys.executable, "-m", "pyinfra", "-y", *flags, str(inventory), "deploy.py"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-3000:]
    assert "gateway.env" in output, "the secrets operation must be part of the run"
    assert "SENTINEL" not in output
    # A fresh host: both secrets are new, named and nothing more.
    assert "gateway.env (changed: OPENCLAW_GATEWAY_TOKEN, TELEGRAM_BOT_TOKEN)" in output


def test_kit_token_prints_the_token_alone_on_stdout_and_the_rotation_steps_on_stderr():
    run = subprocess.run([sys.executable, "-m", "openclaw_kit.secrets", "token"], cwd=REPO, capture_output=True, text=True, check=True)
    token = run.stdout.strip()
    assert run.stdout == token + "\n" and len(token) == 64 and int(token, 16) >= 0, "$(./kit token) must capture the token only"
    steps = run.stderr
    assert "OPENCLAW_GATEWAY_TOKEN=" in steps and ".env" in steps and "deploy.py" in steps
    assert "(changed: OPENCLAW_GATEWAY_TOKEN)" in steps and "401" in steps
    assert token not in steps, "the steps never repeat the value"


def test_changed_names_names_new_different_and_removed_secrets_only():
    values = {"OPENCLAW_GATEWAY_TOKEN": Secret("OPENCLAW_GATEWAY_TOKEN", "a" * 64),
              "TELEGRAM_BOT_TOKEN": Secret("TELEGRAM_BOT_TOKEN", "123:abc")}
    on_host = secrets.line_digests(values, salt="s")
    assert secrets.changed_names(on_host, values, salt="s") == []
    rotated = {**values, "TELEGRAM_BOT_TOKEN": Secret("TELEGRAM_BOT_TOKEN", "123:new")}
    assert secrets.changed_names(on_host, rotated, salt="s") == ["TELEGRAM_BOT_TOKEN"]
    assert secrets.changed_names({}, values, salt="s") == ["OPENCLAW_GATEWAY_TOKEN", "TELEGRAM_BOT_TOKEN"]
    assert secrets.changed_names(on_host, {"OPENCLAW_GATEWAY_TOKEN": values["OPENCLAW_GATEWAY_TOKEN"]}, salt="s") == ["TELEGRAM_BOT_TOKEN"]
    # Salted: a digest is no unsalted sha256 of the line, and another run's digests differ.
    assert secrets.line_digests(values, salt="t") != on_host


def test_env_file_digests_on_a_real_file_match_what_the_controller_computes(tmp_path):
    """The fact's shell command, run by a real sh on a file the kit wrote; odd characters included."""
    values = {"OPENCLAW_GATEWAY_TOKEN": Secret("OPENCLAW_GATEWAY_TOKEN", "a\\b c$x`y%s"),
              "TELEGRAM_BOT_TOKEN": Secret("TELEGRAM_BOT_TOKEN", "123:abc")}
    path = tmp_path / "gateway.env"
    path.write_bytes(env_file_content(values))
    fact = secrets.EnvFileDigests()
    command = fact.command(str(path), "s4lt")
    assert "a\\b" not in command and "123:abc" not in command
    read = subprocess.run(["sh", "-c", command], capture_output=True, text=True, check=True).stdout
    assert "123:abc" not in read and "a\\b" not in read
    assert fact.process(read.splitlines()) == secrets.line_digests(values, salt="s4lt")
    missing = subprocess.run(["sh", "-c", fact.command(str(tmp_path / "none"), "s")], capture_output=True, text=True, check=True)
    assert fact.process(missing.stdout.splitlines()) == {}
