"""A plist as an independent implementation reads it: libplist's `plistutil` (Debian's libplist-utils,
which ./kit installs) converts it to binary and back to its own XML, which is read here without
plistlib. So a plist the kit writes is checked by a parser that shares no code with the one that wrote it."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

needs_plistutil = pytest.mark.skipif(shutil.which("plistutil") is None,
                                     reason="plistutil is not installed (./kit installs libplist-utils)")


def libplist_parse(text: str | bytes) -> object:
    """The plist's value as libplist reads it (dict, list, str, int, float, bool); fails on what it rejects."""
    with tempfile.TemporaryDirectory() as scratch:
        source, binary = Path(scratch) / "in.plist", Path(scratch) / "out.bplist"
        source.write_bytes(text.encode() if isinstance(text, str) else text)
        converted = subprocess.run(["plistutil", "-i", str(source), "-f", "bin", "-o", str(binary)],
                                   capture_output=True, text=True)
        assert converted.returncode == 0 and binary.stat().st_size > 0, f"libplist rejected the plist: {converted.stderr}"
        back = subprocess.run(["plistutil", "-i", str(binary), "-f", "xml"], capture_output=True, check=True).stdout
    root = ET.fromstring(back)
    assert root.tag == "plist" and len(root) == 1, back
    return _value(root[0])


def _value(element: ET.Element) -> object:
    tag = element.tag
    if tag == "dict":
        children = list(element)
        assert all(key.tag == "key" for key in children[::2]), ET.tostring(element)
        return {key.text or "": _value(value) for key, value in zip(children[::2], children[1::2], strict=True)}
    if tag == "array":
        return [_value(child) for child in element]
    if tag in ("true", "false"):
        return tag == "true"
    if tag == "integer":
        return int(element.text)
    if tag == "real":
        return float(element.text)
    if tag == "string":
        return element.text or ""
    raise AssertionError(f"plist element <{tag}> is not expected in a launchd plist")


def differences(found: object, expected: object, where: str = "") -> list[str]:
    """Where two plist values differ, in value or in type (True == 1 in Python, <true/> is not <integer>1)."""
    if isinstance(expected, dict) and isinstance(found, dict):
        return [line for key in sorted(found.keys() | expected.keys())
                for line in differences(found.get(key), expected.get(key), f"{where}/{key}")]
    if isinstance(expected, list) and isinstance(found, list) and len(found) == len(expected):
        return [line for i, (f, e) in enumerate(zip(found, expected, strict=True)) for line in differences(f, e, f"{where}[{i}]")]
    if type(found) is not type(expected) or found != expected:
        return [f"{where or '/'}: {found!r}, expected {expected!r}"]
    return []
