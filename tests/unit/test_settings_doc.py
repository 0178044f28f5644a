"""docs/settings.md is written from the settings models (openclaw_kit/settings/doc.py), and every field of
every model says what it is."""

from pathlib import Path

from pydantic import BaseModel

from openclaw_kit.settings.doc import COMMAND, document, nested_model, sections
from openclaw_kit.settings.host import HostSettings

DOC = Path(__file__).resolve().parents[2] / "docs" / "settings.md"


def models(model: type[BaseModel] = HostSettings) -> list[type[BaseModel]]:
    """The model and every model its fields hold, nested ones too."""
    found = [model]
    for field in model.model_fields.values():
        if (nested := nested_model(field.annotation)) is not None and nested[0] not in found:
            found.extend(each for each in models(nested[0]) if each not in found)
    return found


def test_every_field_of_every_settings_model_has_a_description():
    missing = [f"{model.__name__}.{name}" for model in models() for name, field in model.model_fields.items()
               if not (field.description or "").strip()]
    assert not missing, f"fields without Field(description=...): {missing}"
    assert {model.__name__ for model in models()} >= {"HostSettings", "Channels", "Telegram", "Slack", "WhatsApp",
                                                      "PrivateNetwork", "AdminPeer", "OffsiteBackup"}


def test_every_setting_belongs_to_one_role_section():
    in_sections = [name for model in sections() for name in model.__dict__.get("__annotations__", {})
                   if name in HostSettings.model_fields]
    assert sorted(in_sections) == sorted(HostSettings.model_fields)


def test_docs_settings_md_is_the_generators_output():
    assert DOC.read_text() == document(), f"docs/settings.md is stale: regenerate it with `{COMMAND}`"


def test_the_document_has_a_row_per_setting_with_its_default_and_platforms():
    text = document()
    for name in HostSettings.model_fields:
        assert f"| `{name}` |" in text, name
    assert "| `log_retention_days` | integer 1-3650 | `14` | Debian 12, Debian 13, Ubuntu 24.04 |" in text
    assert "| `sshd_port` | integer 1-65535 | `22` | all; macOS: `22` only |" in text
    assert "| `admin_cidrs` | list of text, 1 or more | required | all |" in text
    assert "| `channels.telegram.bot_token` | secret reference `${VAR}` | required | all |" in text
