"""Settings: every host's inventory data parsed into typed objects, validated before any change.

rules.py: value rules; host.py: the HostSettings model, made of one module per role (base.py,
firewall.py, openclaw.py, nginx.py, fail2ban.py, logs.py, backup.py, audit.py, monitoring.py,
tls.py, wireguard.py) holding that role's keys, defaults and descriptions; platforms.py: which platform
honours which setting; report.py: problems as lines; inventory.py: a whole inventory at once;
runtime.py: from deploy.py; doc.py: docs/settings.md from the models.
"""

from openclaw_kit.errors import SettingsError
from openclaw_kit.settings.host import HostSettings
from openclaw_kit.settings.inventory import validate_hosts
from openclaw_kit.settings.runtime import settings_for

__all__ = ["HostSettings", "SettingsError", "settings_for", "validate_hosts"]
