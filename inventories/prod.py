"""Your hosts. Copy this file (e.g. to inventories/mine.py), edit it, then:

    pyinfra inventories/mine.py deploy.py

A host's settings are its own data merged over its group's data (top-level keys: a host's
`channels` replaces the group's `channels` whole). Every key is validated before any host is
changed; docs/settings.md lists them all. Secrets are `${VAR}` references to environment variables
(or to the git-ignored .env file); never write a secret's value here.
"""

gateways = (
    [
        ("gw1.example.com", {"domain": "gw1.example.com", "hostname": "gw1"}),
    ],
    {
        # How pyinfra connects (its own keys: ssh_user, ssh_key, ssh_port, ...).
        "ssh_user": "root",
        # Who may reach SSH. Get this right: everything else is dropped.
        "admin_cidrs": ["203.0.113.10/32"],
        # The Control UI is not public (docs/nginx.md): reach it with `ssh -L 18789:127.0.0.1:18789`.
        "sshd_tcp_forwarding": "local",
        "admin_email": "admin@example.com",
        "acme_directory": "letsencrypt",
        "gateway_token": "${OPENCLAW_GATEWAY_TOKEN}",
        "channels": {
            "telegram": {
                "bot_token": "${TELEGRAM_BOT_TOKEN}",
                "allow_from": [123456789],
            },
        },
    },
)
