"""The kit's roles, one per module or package (deploy.py runs them in order). No role imports
another: what several need is in openclaw_kit/ (the import contracts in pyproject.toml)."""
