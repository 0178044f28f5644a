"""The local sandbox hosts made by `python -m sandbox up`; settings as a real user would write them.

Secrets come from the environment or .env like in production (`./kit sandbox` writes a .env
with a fresh token when there is none).
"""

from sandbox import host_domain, load_state

_state = load_state()

sandbox = (
    [
        (
            host["address"],
            {
                "hostname": host["name"],
                "domain": host_domain(host["name"]),
                # A host made like a cloud image (root cannot log in) is deployed as its admin user.
                **({"ssh_user": host["ssh_user"], "_sudo": True} if host.get("ssh_user", "root") != "root" else {}),
            },
        )
        for host in _state["hosts"]
    ],
    {
        "ssh_user": "root",
        "ssh_key": _state["ssh_key"],
        "ssh_known_hosts_file": _state["known_hosts"],
        "ssh_strict_host_key_checking": "yes",
        # The controller reaches the hosts from the bridge address only.
        "admin_cidrs": [f"{_state['gateway']}/32"],
        # The other sandbox hosts may reach SSH too (and get banned by fail2ban): the tests play
        # the attacker from one of them.
        "ssh_cidrs": [_state["network"]],
        # Short bans and a short window, so the tests see a ban end within a minute.
        "fail2ban_bantime_seconds": 30,
        "fail2ban_findtime_seconds": 60,
        "fail2ban_maxretry": 3,
        "admin_email": "admin@openclaw.test",
        "acme_directory": _state["acme_directory"],
        "acme_ca_file": _state["acme_ca_file"],
        "proxy": _state["proxy"],
        "proxy_ca_file": _state["proxy_ca_file"],
        "public_interface": "host0",
        # OpenClaw's generic webhook route is public, as for a user who triggers the agent from
        # outside: the tests check it reaches the gateway while everything else gets 403.
        "public_webhooks": ["hooks"],
        # The hosts reach only package registries (through the proxy): Node.js comes from npm's.
        "node_source": "npm-package",
        "gateway_token": "${OPENCLAW_GATEWAY_TOKEN}",
    },
)
