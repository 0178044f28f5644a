"""A reader finds any behaviour by its role name: roles/, templates/, docs/ and tests/ agree."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ROLE_NAMES = sorted(
    p.stem if p.is_file() else p.name
    for p in (ROOT / "roles").iterdir()
    if (p.suffix == ".py" and p.stem != "__init__") or (p.is_dir() and (p / "__init__.py").exists())
)


def test_the_roles_are_found():
    assert {"base", "firewall", "openclaw", "nginx"} <= set(ROLE_NAMES)


@pytest.mark.parametrize("role", ROLE_NAMES)
def test_each_role_has_its_templates_docs_and_tests(role):
    expected = [
        f"templates/{role}",
        f"docs/{role}.md",
        f"tests/unit/test_{role}.py",
        f"tests/verify/test_{role}.py",
    ]
    missing = [path for path in expected if not (ROOT / path).exists()]
    assert not missing, f"role {role}: missing {', '.join(missing)}"


@pytest.mark.parametrize("role", ROLE_NAMES)
def test_the_layout_page_names_each_role(role):
    assert f"| `{role}` |" in (ROOT / "docs/development.md").read_text()
