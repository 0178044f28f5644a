"""The two ways a run stops before any host is changed, each with its own headline."""

from __future__ import annotations

from pyinfra.api.exceptions import PyinfraError


class KitError(PyinfraError):
    """Problems found while pyinfra prepares the hosts, one line each; no host was changed."""

    noun = "problem"

    def __init__(self, problems: list[str]):
        self.problems = problems
        count = len(problems)
        super().__init__(
            f"{count} {self.noun}{'s' if count != 1 else ''}; no host was changed:\n"
            + "\n".join(f"  {line}" for line in problems)
        )


class SettingsError(KitError):
    """All settings problems of all hosts (inventory values, the host's operating system)."""

    noun = "settings problem"


class ControllerError(KitError):
    """A problem of the controller or of what the deploy found, not of a setting: `npm pack` failed,
    a CPU the kit has no Node.js for, a firewall that would lock the deploy out."""

    noun = "deploy problem"
