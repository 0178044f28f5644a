"""The sandbox hosts of inventories/sandbox.py, reached as most users reach a cloud server: as its
non-root admin user (passwordless sudo, `python -m sandbox` makes it), every command through sudo.

    pyinfra inventories/sandbox_admin.py deploy.py
    pytest tests/verify --inventory inventories/sandbox_admin.py
"""

import runpy
from pathlib import Path

from sandbox import load_state

_hosts, _data = runpy.run_path(str(Path(__file__).with_name("sandbox.py")))["sandbox"]

sandbox = (_hosts, {**_data, "ssh_user": load_state()["admin_user"], "_sudo": True})
