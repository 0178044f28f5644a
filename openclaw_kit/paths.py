"""Where the kit's own files are: templates/<role>/, deploy.py, the verify checks, the example inventory.

A checkout keeps them at its top level, where a reader looks for them. A wheel carries the same
files, at the same relative paths, in openclaw_kit/kit_files/ (copied there at build time by
setup.py; never present in a checkout). The user's own files, `.env` and inventories, are not
here: they are relative to the working directory or given as paths.
"""

from pathlib import Path

PACKAGED = Path(__file__).resolve().parent / "kit_files"
CHECKOUT = Path(__file__).resolve().parent.parent
# The installed wheel's copy, else the checkout (an editable install or PYTHONPATH).
KIT = PACKAGED if PACKAGED.is_dir() else CHECKOUT

TEMPLATES = KIT / "templates"
VERIFY = KIT / "tests" / "verify"
EXAMPLE_INVENTORY = KIT / "inventories" / "prod.py"
KIT_DEPLOY = KIT / "deploy.py"


def deploy_file() -> Path:
    """The deploy.py that `pyinfra INVENTORY deploy.py` would run here: the working directory's
    (a checkout, or a directory made by `openclaw-kit init`), else the kit's own."""
    here = Path("deploy.py")
    return here.resolve() if here.is_file() else KIT_DEPLOY
