"""The host's file layout: the paths and names more than one role needs, each defined once, here.

The role that makes a path imports it from here like the roles that read it, so no role imports
another (the import contract in pyproject.toml). What only one role needs stays in that role. Linux
paths unless said otherwise; a macOS backend keeps its own.
"""

# The kit's own directories: its config, its working files (candidates, the state copy of a switch, ...).
KIT_CONFIG_DIR = "/etc/openclaw-kit"
KIT_STATE_DIR = "/var/lib/openclaw-kit"

# sshd's (role base hardens them; role audit watches them).
SSHD_CONFIG = "/etc/ssh/sshd_config"
SSHD_DROPIN_DIR = "/etc/ssh/sshd_config.d"

# nftables (role firewall): the kit's table, into whose sets role fail2ban bans, and what nftables
# loads at boot (role audit watches it).
NFT_TABLE = "openclaw_kit"
NFT_CONF = "/etc/nftables.conf"
NFT_DIR = "/etc/nftables.d"

# The gateway (role openclaw), the same on every platform: role logs rotates its log and runs its CLI,
# role backup restores its config, role audit watches its config.
GATEWAY_PREFIX = "/opt/openclaw"  # Node.js and OpenClaw, one directory per version
GATEWAY_CURRENT = f"{GATEWAY_PREFIX}/current"  # the running release
GATEWAY_LOG_DIR = "/var/log/openclaw"
GATEWAY_LOG_FILE = f"{GATEWAY_LOG_DIR}/gateway.log"
GATEWAY_CONFIG_DIR = "/etc/openclaw"
GATEWAY_ENV_FILE = f"{GATEWAY_CONFIG_DIR}/gateway.env"
GATEWAY_DESIRED_NAME = "openclaw.json"
GATEWAY_DESIRED_CONFIG = f"{GATEWAY_CONFIG_DIR}/{GATEWAY_DESIRED_NAME}"  # rendered from settings, validated first
GATEWAY_CLI = "/usr/local/sbin/openclaw-kit-cli"
GATEWAY_CONFIG_MERGE = "/usr/local/lib/openclaw-kit/merge-config.py"
# ... on Linux (roles/openclaw/systemd.py): the service account, the unit, the state the gateway keeps.
GATEWAY_USER = "openclaw"
GATEWAY_SERVICE = "openclaw-gateway"
GATEWAY_STATE_DIR = "/var/lib/openclaw"
GATEWAY_LIVE_CONFIG = f"{GATEWAY_STATE_DIR}/openclaw.json"  # what the gateway reads; 0600, as OpenClaw expects

# nginx (role nginx): its logs (role fail2ban's jails read the access log, role logs rotates them),
# the ACME webroot it serves and the certificate link it reads (role tls issues into them).
NGINX_LOG_DIR = "/var/log/nginx"
NGINX_ACCESS_LOG_NAME = "openclaw-kit-access.log"  # in NGINX_LOG_DIR; *.log, so role logs rotates it
NGINX_PID = "/run/nginx.pid"  # as in Debian's nginx.service (PIDFile=)
ACME_WEBROOT = "/var/www/acme"
TLS_DIR = "/etc/ssl/openclaw-kit"
# nginx serves whatever this points at: certbot's live directory once role tls has issued a
# certificate, a self-signed bootstrap pair until then.
TLS_CURRENT = f"{TLS_DIR}/current"
LETSENCRYPT_LIVE = "/etc/letsencrypt/live"  # certbot's: live/<cert-name>/{fullchain,privkey}.pem

# Role logs: the job runner (roles tls and backup schedule their jobs through it), the audit log
# it records every outcome in, the local backups (role backup copies them off the host).
JOB_RUNNER = "/usr/local/sbin/openclaw-kit-job"
KIT_LOG_DIR = "/var/log/openclaw-kit"
AUDIT_DIR = f"{KIT_LOG_DIR}/audit"
AUDIT_LOG = f"{AUDIT_DIR}/audit.log"
BACKUP_STORE = "/var/backups/openclaw"  # root-only: verified archives
# The job runner writes one Prometheus text file per job (JOB_METRICS_PREFIX + <job>.prom) into
# TEXTFILE_DIR when that directory exists: role monitoring makes it for the node exporter's textfile
# collector (Debian's own directory of prometheus-node-exporter); without monitoring nothing is written.
TEXTFILE_DIR = "/var/lib/prometheus/node-exporter"
JOB_METRICS_PREFIX = "openclaw-kit-job-"
