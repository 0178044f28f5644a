"""The sandbox hosts of inventories/sandbox.py, reached as most users reach a cloud server: as its
non-root admin user (`admin` on Debian, `ubuntu` on Ubuntu; passwordless sudo), every command through sudo.

    pyinfra inventories/sandbox_admin.py deploy.py
    pytest tests/verify --inventory inventories/sandbox_admin.py
"""

import runpy
from pathlib import Path

from sandbox import load_state

_hosts, _data = runpy.run_path(str(Path(__file__).with_name("sandbox.py")))["sandbox"]

_admin = {h["address"]: h["admin_user"] for h in load_state()["hosts"]}

sandbox = ([(name, {**data, "ssh_user": _admin[name], "_sudo": True}) for name, data in _hosts], _data)
