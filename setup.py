"""The wheel carries the checkout's top-level kit files inside openclaw_kit/kit_files/.

pyproject.toml says everything else. templates/<role>/, deploy.py, the verify checks and the
example inventory stay at the checkout's top level (one copy each); the build copies them into the
package, where openclaw_kit.paths finds them. An editable install reads the checkout itself.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

# Relative to the checkout; the same relative paths inside openclaw_kit/kit_files/.
KIT_FILES = ["templates", "deploy.py", "inventories/prod.py", "tests/__init__.py", "tests/verify"]


class build_py_with_kit_files(build_py):
    def run(self):
        super().run()
        if self.editable_mode:
            return
        target = Path(self.build_lib) / "openclaw_kit" / "kit_files"
        shutil.rmtree(target, ignore_errors=True)  # nothing left from an earlier build
        for relative in KIT_FILES:
            source, dest = Path(relative), target / relative
            dest.parent.mkdir(parents=True, exist_ok=True)
            if source.is_dir():
                shutil.copytree(source, dest, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                shutil.copy2(source, dest)


setup(cmdclass={"build_py": build_py_with_kit_files})
