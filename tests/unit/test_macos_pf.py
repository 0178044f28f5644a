"""The firewall on macOS (roles/firewall/pf.py) on recorded facts: the exact commands for a fresh, a
converged and a drifted Mac; the rendered anchor run through a small pf evaluator (tests/unit/pf_eval.py:
the deploy's own SSH session survives the first load, DHCPv4 replies come in); the kit's main ruleset
and the boot job; the apply script's --load-main and --boot with stand-ins for pfctl. Never run on a Mac."""

from __future__ import annotations

import hashlib
import os
import plistlib
import re
import shlex
import shutil
import subprocess

import pytest

from openclaw_kit import launchd
from openclaw_kit.templates import render
from roles.firewall import firewall, pf
from tests.unit.macos_host import FRESH, file_responses, placed_response, recorded, run_role, uploads
from tests.unit.pf_eval import Packet, Pf, parse
from tests.unit.test_firewall import COMBINATIONS
from tests.unit.test_macos import settings

MAIN_CANDIDATE = f"{pf.CANDIDATE_DIR}/pf.conf"
BOOT_PLIST = f"{launchd.DAEMONS}/{pf.BOOT_LABEL}.plist"
BOOT_CANDIDATE = f"{launchd.CANDIDATES}/{pf.BOOT_LABEL}.plist"
STATUS = "pfctl -a openclaw-kit -sr"  # in the PfStatus fact's command
PF_CONF_GREP = re.compile(r'grep -E -e .*anchor "openclaw-kit".* /etc/pf.conf')


# --- the exact commands: fresh, converged, drifted ------------------------------------------------------------


def main_ruleset_commands() -> list[str]:
    return [
        f"mkdir -p {pf.CANDIDATE_DIR}",
        f"upload {MAIN_CANDIDATE}",
        f"chown root:wheel {MAIN_CANDIDATE} && chmod 644 {MAIN_CANDIDATE}",
        f"( pfctl -n -f {MAIN_CANDIDATE}\n) || {{ echo 'pfctl -n rejected the new {pf.MAIN}; the running rules and "
        f"{pf.MAIN} are unchanged' >&2; exit 1; }}",
        f"{pf.APPLY} --load-main {MAIN_CANDIDATE} && cp -p {MAIN_CANDIDATE} {pf.MAIN}.openclaw-kit-new && "
        f"mv -f {pf.MAIN}.openclaw-kit-new {pf.MAIN}",
    ]


def boot_plist_commands() -> list[str]:
    return [
        f"mkdir -p {launchd.CANDIDATES}",
        f"upload {BOOT_CANDIDATE}",
        f"chown root:wheel {BOOT_CANDIDATE} && chmod 644 {BOOT_CANDIDATE}",
        f"( plutil -lint -s {BOOT_CANDIDATE}\n) || {{ echo 'plutil rejected the new {pf.BOOT_LABEL}.plist; the loaded job "
        "keeps the old one' >&2; exit 1; }",
        f"cp -p {BOOT_CANDIDATE} {BOOT_PLIST}.openclaw-kit-new && mv -f {BOOT_PLIST}.openclaw-kit-new {BOOT_PLIST}",
    ]


LOAD_ANCHOR = ("firewall | Load the pf anchor openclaw-kit (rolled back in 45 s unless confirmed)",
               [f"{pf.APPLY} --timeout 45 {pf.DESIRED}"])
CONFIRM = ("firewall | Confirm the firewall", [f"{pf.APPLY} --confirm"])
MAIN_OP = f"firewall | pf's main ruleset {pf.MAIN}: Apple's anchors and the kit's, checked with pfctl -n, loaded, then made live"
PF_CONF_OP = "firewall | /etc/pf.conf references the anchor openclaw-kit (Apple's lines untouched), checked with pfctl -n"
BOOT_PLIST_OP = f"firewall | pf enabled with the kit's anchor at boot: {BOOT_PLIST}"
BOOT_LOAD = (f"firewall | pf enabled with the kit's anchor at boot: load {pf.BOOT_LABEL} (launchctl bootstrap system)",
             [f"launchctl enable system/{pf.BOOT_LABEL}", f"launchctl bootstrap system {BOOT_PLIST}"])
PF_CONF_SCRIPT = render("firewall", "macos/pf-conf-reference.sh.j2", pf_conf=pf.PF_CONF, lines=pf.PF_CONF_LINES).strip()


def test_a_fresh_mac_gets_exactly_these_commands():
    assert run_role(firewall, settings(), FRESH) == [
        ("firewall | Directory /usr/local/sbin", ["mkdir -p /usr/local/sbin", "chmod 755 /usr/local/sbin",
                                                  "chown root:wheel /usr/local/sbin"]),
        (f"firewall | Firewall state directory {pf.STATE_DIR}", [f"mkdir -p {pf.STATE_DIR}", f"chmod 700 {pf.STATE_DIR}",
                                                                 f"chgrp wheel {pf.STATE_DIR}"]),
        (f"firewall | Apply script {pf.APPLY}", [f"upload {pf.APPLY}", f"chown root:wheel {pf.APPLY}", f"chmod 750 {pf.APPLY}"]),
        (f"firewall | Desired pf rules {pf.DESIRED}", [f"upload {pf.DESIRED}", f"chgrp wheel {pf.DESIRED}",
                                                       f"chmod 600 {pf.DESIRED}"]),
        (f"firewall | Empty anchor file {pf.PERSISTED} until rules are confirmed",
         [f"install -m 644 -o root -g wheel /dev/null {pf.PERSISTED}"]),
        (f"firewall | Directory {pf.MAIN_DIR}", [f"mkdir -p {pf.MAIN_DIR}", f"chmod 755 {pf.MAIN_DIR}",
                                                 f"chown root:wheel {pf.MAIN_DIR}"]),
        (MAIN_OP, main_ruleset_commands()),
        (PF_CONF_OP, [PF_CONF_SCRIPT]),
        LOAD_ANCHOR,
        CONFIRM,
        (BOOT_PLIST_OP, boot_plist_commands()),
        BOOT_LOAD,
    ]


def converged_responses(s) -> dict:
    """What a Mac answers once the kit's firewall is in place: every uploaded file with its content
    and mode, pf.conf with the kit's two lines, the anchor confirmed, live and referenced by the
    running main ruleset, pf on, the boot job loaded."""
    files = uploads(firewall, s, FRESH)
    rules = pf.ruleset(s)
    sha = hashlib.sha256(rules.encode()).hexdigest()
    live = "f" * 64
    pf_conf = recorded("pf.conf") + "".join(f"{line}\n" for line in pf.PF_CONF_LINES)
    grep = [line for line in pf_conf.splitlines() if re.match(r'^(load )?anchor "openclaw-kit"', line)]
    modes = {pf.APPLY: ("-rwxr-x---", "root", "wheel"), pf.DESIRED: ("-rw-------", "root", "wheel")}
    in_place = {path: content for path, content in files.items() if not path.startswith((launchd.CANDIDATES, pf.CANDIDATE_DIR))}
    in_place[BOOT_PLIST] = files[BOOT_CANDIDATE]
    in_place[pf.MAIN] = files[MAIN_CANDIDATE]
    in_place[pf.PERSISTED] = rules
    directories = {"/usr/local/sbin": ("drwxr-xr-x", "root", "wheel"), pf.STATE_DIR: ("drwx------", "root", "wheel"),
                   pf.MAIN_DIR: ("drwxr-xr-x", "root", "wheel")}
    return {
        STATUS: [f"persisted {sha}", f"marker {sha} {live}", f"live {live}", "enabled 1", "referenced 1"],
        f"launchctl print system/{pf.BOOT_LABEL}": recorded("launchctl-print-system-org.openclaw-kit.firewall.txt"),
        PF_CONF_GREP: grep,
        **file_responses(in_place, modes),
        **{re.compile(rf"stat .*{re.escape(path)}( |'|$)"): f"user={u} group={g} mode={m} atime=1 mtime=1 ctime=1 size=64 {path}"
           for path, (m, u, g) in directories.items()},
        **FRESH,
    }


def test_a_converged_mac_gets_no_command():
    s = settings()
    assert run_role(firewall, s, converged_responses(s)) == []


def status_with(s, **changed) -> list[str]:
    status = dict(line.split(" ", 1) for line in converged_responses(s)[STATUS])
    return [f"{key} {value}" for key, value in {**status, **changed}.items()]


@pytest.mark.parametrize(("drift", "expected"), [
    pytest.param(lambda s: {STATUS: status_with(s, live="0" * 64)}, [LOAD_ANCHOR, CONFIRM], id="live anchor edited"),
    pytest.param(lambda s: {STATUS: status_with(s, enabled="0")}, [LOAD_ANCHOR, CONFIRM], id="pf disabled (pfctl -d)"),
    pytest.param(lambda s: {STATUS: status_with(s, referenced="0")}, [(MAIN_OP, main_ruleset_commands())],
                 id="main ruleset without the anchor (pfctl -f of a reset pf.conf)"),
    pytest.param(lambda s: placed_response(pf.MAIN, "0" * 40),
                 [(MAIN_OP, main_ruleset_commands())], id="main ruleset file edited"),
    pytest.param(lambda s: {PF_CONF_GREP: "__pyinfra_exists_/etc/pf.conf"}, [(PF_CONF_OP, [PF_CONF_SCRIPT])],
                 id="pf.conf reset by an update"),
    pytest.param(lambda s: {f"launchctl print system/{pf.BOOT_LABEL}": ""}, [BOOT_LOAD], id="boot job unloaded"),
    pytest.param(lambda s: placed_response(BOOT_PLIST, "0" * 40),
                 [(BOOT_PLIST_OP, boot_plist_commands()), "the reload of the boot job"],
                 id="boot plist edited (or the old pfctl -E -f /etc/pf.conf one)"),
])
def test_a_drifted_mac_gets_exactly_the_commands_that_put_it_back(drift, expected):
    s = settings()
    responses = {**drift(s), **converged_responses(s)}
    responses.update(drift(s))
    if "the reload of the boot job" in expected:
        # How a changed plist is reloaded is openclaw_kit.launchd's (tests/unit/test_macos_launchd.py):
        # here, exactly what it does for this job, after the new plist.
        def boot_job_only(_settings):
            launchd.daemon(name="pf enabled with the kit's anchor at boot", label=pf.BOOT_LABEL, plist=pf.boot_plist())
        reload = run_role(boot_job_only, s, responses)[1:]
        assert len(reload) == 1 and pf.BOOT_LABEL in reload[0][0]
        expected = [*expected[:-1], *((f"firewall | {name}", commands) for name, commands in reload)]
    assert run_role(firewall, s, responses) == expected


def test_new_settings_reload_the_anchor_only():
    planned = run_role(firewall, settings(sshd_port=2222), converged_responses(settings()))
    assert planned == [(f"firewall | Desired pf rules {pf.DESIRED}", [f"upload {pf.DESIRED}", f"chgrp wheel {pf.DESIRED}",
                                                                      f"chmod 600 {pf.DESIRED}"]), LOAD_ANCHOR, CONFIRM]


# --- the kit's main ruleset and the boot job ------------------------------------------------------------------


def test_the_main_ruleset_is_apples_anchor_points_then_the_kits():
    apple = [line for line in recorded("pf.conf").splitlines() if line and not line.startswith("#")]
    assert apple == pf.APPLE_ANCHORS
    lines = pf.main_ruleset().splitlines()
    assert lines[0].startswith("# Managed by openclaw-kit")
    assert lines[1:] == [*apple, 'anchor "openclaw-kit"', 'load anchor "openclaw-kit" from "/etc/pf.anchors/openclaw-kit"']
    assert not pf.MAIN.startswith(("/etc/pf.conf", "/etc/pf.anchors/")), "outside what a macOS update rewrites"


def test_the_boot_job_runs_the_apply_script_at_load_with_its_errors_logged():
    assert plistlib.loads(launchd.plist_text(pf.boot_plist()).encode()) == {
        "Label": "org.openclaw-kit.firewall",
        "ProgramArguments": ["/usr/local/sbin/openclaw-kit-firewall-apply", "--boot"],
        "RunAtLoad": True,
        "StandardErrorPath": "/var/log/openclaw-kit-firewall.log",
    }


# --- the rendered anchor through the evaluator ----------------------------------------------------------------

ADMIN, OUTSIDER, MAC = "203.0.113.7", "192.0.2.99", "198.51.100.10"


def session(client: str, port: int = 22, interface: str = "en0") -> list[Packet]:
    """An SSH session that was open before pf came on: sshd sends a command's output, the client
    acknowledges it, sshd sends more. No SYN: pf has no state for it."""
    return [
        Packet("out", interface, "tcp", MAC, port, client, 50022, "PA"),
        Packet("in", interface, "tcp", client, 50022, MAC, port, "A"),
        Packet("out", interface, "tcp", MAC, port, client, 50022, "PA"),
        Packet("in", interface, "tcp", client, 50022, MAC, port, "PA"),
    ]


@pytest.mark.parametrize("data", COMBINATIONS.values(), ids=COMBINATIONS.keys())
def test_every_rendered_rule_parses(data):
    rules = parse(pf.ruleset(settings(**data)))
    assert rules and rules[-1].action in ("pass", "block")


@pytest.mark.parametrize("data", [{}, {"egress": "restricted"}, {"public_interface": "en0", "egress": "restricted"}],
                         ids=["egress open", "egress restricted", "public interface"])
def test_the_deploys_own_ssh_session_survives_the_first_load(data):
    s = settings(**data)
    firewall_on = Pf(pf.ruleset(s))
    assert [firewall_on.decide(packet)[0] for packet in session(ADMIN, s.sshd_port)] == ["pass"] * 4
    # A session from outside the admin networks is not picked up, and a new one is not let in.
    outsider = Pf(pf.ruleset(s))
    assert outsider.decide(session(OUTSIDER)[1]) == ("block", "block drop in log quick all")
    assert outsider.decide(Packet("in", "en0", "tcp", OUTSIDER, 50100, MAC, 22, "S"))[0] == "block"
    assert Pf(pf.ruleset(s)).decide(Packet("in", "en0", "tcp", ADMIN, 50100, MAC, 22, "S"))[0] == "pass"


def test_without_flags_any_the_session_would_fall_to_the_final_block():
    # Why: pf's default `flags S/SA` admits a connection's first packet only.
    default = pf.ruleset(settings()).replace(" flags any keep state", "")
    decided = Pf(default).decide(session(ADMIN)[1])
    assert decided == ("block", "block drop in log quick all")


def test_dhcpv4_replies_come_in():
    rules = pf.ruleset(settings())
    for destination in ("192.168.1.50", "255.255.255.255"):
        offer = Packet("in", "en0", "udp", "192.168.1.1", 67, destination, 68)
        assert Pf(rules).decide(offer) == ("pass", "pass in quick inet proto udp from any port 67 to any port 68")
    # And only replies: a packet from port 68 to 67 coming in is not one.
    assert Pf(rules).decide(Packet("in", "en0", "udp", "192.168.1.7", 68, MAC, 67))[0] == "block"


def test_the_evaluator_rejects_what_it_does_not_understand():
    with pytest.raises(ValueError, match="not understood from 'keep-state'"):
        parse("pass in quick proto tcp from any to any port 22 keep-state")


# --- the apply script's --load-main and --boot, with stand-ins ------------------------------------------------

# pfctl: the running main ruleset is $PF/main (`-sr` lists its anchors as pfctl does, `anchor "x" all`);
# a file named in $PF/refuse makes a load fail with its content on stderr, as pfctl does.
PFCTL = r"""#!/bin/sh
echo "pfctl $*" >> "$CALLS"
case "$*" in
  "-n -f "*) : ;;
  "-f "*) if [ -s "$PF/refuse" ]; then cat "$PF/refuse" >&2; exit 1; fi; cp "$2" "$PF/main" ;;
  "-sr") sed -n 's/^anchor \("[^"]*"\)$/anchor \1 all/p' "$PF/main" 2>/dev/null ;;
  "-s info") [ -f "$PF/enabled" ] && echo "Status: Enabled for 0 days 00:01:00           Debug: Urgent" || echo "Status: Disabled" ;;
  "-E") touch "$PF/enabled" ;;
  *) : ;;
esac
"""
# sleep: the first one is when Apple's com.apple.pfctl loads /etc/pf.conf, as an update left it.
SLEEP = r"""#!/bin/sh
echo "sleep $*" >> "$CALLS"
[ -f "$PF/apple-loaded" ] || { cp "$APPLE_PF_CONF" "$PF/main"; touch "$PF/apple-loaded"; }
"""


@pytest.fixture
def stand_ins(tmp_path):
    if not shutil.which("shasum"):
        pytest.skip("needs shasum (perl) to run the macOS apply script")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in {"pfctl": PFCTL, "sleep": SLEEP, "logger": "#!/bin/sh\n:\n",
                       "launchctl": '#!/bin/sh\necho "launchctl $*" >> "$CALLS"\n'}.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    (tmp_path / "pf").mkdir()
    (tmp_path / "apple-pf.conf").write_text(recorded("pf.conf"))
    (tmp_path / "etc").mkdir()
    main = tmp_path / "etc" / "pf.conf"
    data = {**pf.script_data(), "path": str(tmp_path / "apply"), "run_dir": str(tmp_path / "run"),
            "persisted": str(tmp_path / "persisted.pf"), "marker": str(tmp_path / "applied"), "main": str(main),
            "boot_checks": 3, "boot_check_seconds": 5}
    (tmp_path / "apply").write_text(render("firewall", "macos/openclaw-kit-firewall-apply.j2", **data))
    (tmp_path / "apply").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "CALLS": str(tmp_path / "calls"),
           "PF": str(tmp_path / "pf"), "APPLE_PF_CONF": str(tmp_path / "apple-pf.conf")}

    def sh(command: str) -> subprocess.CompletedProcess:
        return subprocess.run(["sh", "-c", command], capture_output=True, text=True, env=env, timeout=60)

    def calls() -> list[str]:
        path = tmp_path / "calls"
        return path.read_text().splitlines() if path.exists() else []
    return sh, calls, tmp_path


def on_this_machine(command: str, tmp) -> str:
    """A command of the role with its Mac paths moved under tmp."""
    return (command.replace(pf.APPLY, str(tmp / "apply")).replace(pf.CANDIDATE_DIR, str(tmp / "candidate"))
            .replace(pf.MAIN_DIR, str(tmp / "etc")))


def main_ruleset_promotion(tmp) -> tuple[str, str]:
    """The main ruleset operation's check and promotion, as the role runs them, its candidate in place."""
    commands = dict(run_role(firewall, settings(), FRESH))[MAIN_OP]
    (tmp / "candidate").mkdir(exist_ok=True)
    (tmp / "candidate" / "pf.conf").write_text(pf.main_ruleset())
    return on_this_machine(commands[3], tmp), on_this_machine(commands[4], tmp)


def test_a_new_main_ruleset_is_loaded_then_made_live(stand_ins):
    sh, calls, tmp = stand_ins
    check, promote = main_ruleset_promotion(tmp)
    assert sh(check).returncode == 0 and sh(promote).returncode == 0
    assert (tmp / "etc" / "pf.conf").read_text() == (tmp / "pf" / "main").read_text() == pf.main_ruleset()
    candidate = tmp / "candidate" / "pf.conf"
    assert calls() == [f"pfctl -n -f {candidate}", "pfctl -a openclaw-kit -t banned -T show", f"pfctl -f {candidate}"]


def test_a_main_ruleset_pfctl_refuses_is_reported_and_changes_nothing(stand_ins):
    sh, calls, tmp = stand_ins
    (tmp / "etc" / "pf.conf").write_text("# the one before\n")
    (tmp / "pf" / "main").write_text("# running\n")
    (tmp / "pf" / "refuse").write_text("pfctl: DIOCXCOMMIT: Resource busy\n")
    check, promote = main_ruleset_promotion(tmp)
    assert sh(check).returncode == 0
    refused = sh(promote)
    assert refused.returncode == 1
    assert "pfctl refused to load" in refused.stderr and "the running rules are unchanged" in refused.stderr
    assert "pfctl: DIOCXCOMMIT: Resource busy" in refused.stderr, "pfctl's own words, passed on"
    assert (tmp / "etc" / "pf.conf").read_text() == "# the one before\n"
    assert not (tmp / "etc" / "pf.conf.openclaw-kit-new").exists()
    assert (tmp / "pf" / "main").read_text() == "# running\n"


def test_at_boot_the_main_ruleset_is_put_back_after_apples_pf_conf_load(stand_ins):
    sh, calls, tmp = stand_ins
    main = tmp / "etc" / "pf.conf"
    main.write_text(pf.main_ruleset())
    booted = sh(f"{tmp / 'apply'} --boot")
    assert booted.returncode == 0, booted.stderr
    assert calls() == [
        "pfctl -a openclaw-kit -t banned -T show", f"pfctl -f {main}", "pfctl -s info", "pfctl -E",
        "sleep 5", "pfctl -sr", "pfctl -a openclaw-kit -t banned -T show", f"pfctl -f {main}",
        "sleep 5", "pfctl -sr",
        "sleep 5", "pfctl -sr",
    ]
    assert "does not reference the anchor openclaw-kit" in booted.stderr
    assert (tmp / "pf" / "main").read_text() == pf.main_ruleset() and (tmp / "pf" / "enabled").exists()


def test_at_boot_a_refused_load_still_enables_pf_and_says_why(stand_ins):
    sh, calls, tmp = stand_ins
    (tmp / "etc" / "pf.conf").write_text(pf.main_ruleset())
    (tmp / "pf" / "refuse").write_text("pfctl: Syntax error in config file: pf rules not loaded\n")
    booted = sh(f"{tmp / 'apply'} --boot")
    assert booted.returncode == 0
    assert "pfctl: Syntax error in config file" in booted.stderr and (tmp / "pf" / "enabled").exists()


# --- /etc/pf.conf: checked, never loaded ----------------------------------------------------------------------


def pf_conf_reference(tmp_path, refusal: str = ""):
    (tmp_path / "pf.conf").write_text(recorded("pf.conf"))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "pfctl").write_text(f'#!/bin/sh\necho "pfctl $*" >> {tmp_path / "calls"}\n'
                                   + (f"echo {shlex.quote(refusal)} >&2; exit 1\n" if refusal else ""))
    (bin_dir / "pfctl").chmod(0o755)
    script = render("firewall", "macos/pf-conf-reference.sh.j2", pf_conf=str(tmp_path / "pf.conf"), lines=pf.PF_CONF_LINES)
    return subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=30,
                          env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"})


def test_pf_conf_gets_the_kits_lines_checked_and_is_not_loaded(tmp_path):
    assert pf_conf_reference(tmp_path).returncode == 0
    assert (tmp_path / "calls").read_text().splitlines() == [f"pfctl -n -f {tmp_path / 'pf.conf.openclaw-kit-new'}"]
    assert (tmp_path / "pf.conf").read_text() == recorded("pf.conf") + "".join(f"{line}\n" for line in pf.PF_CONF_LINES)


def test_a_pf_conf_pfctl_rejects_is_reported_in_pfctls_words_and_left_as_it_was(tmp_path):
    run = pf_conf_reference(tmp_path, refusal="/etc/pf.conf:30: syntax error")
    assert run.returncode == 1
    assert "/etc/pf.conf:30: syntax error" in run.stderr and "/etc/pf.conf is unchanged" not in run.stderr
    assert f"{tmp_path / 'pf.conf'} is unchanged" in run.stderr
    assert (tmp_path / "pf.conf").read_text() == recorded("pf.conf")
    assert not (tmp_path / "pf.conf.openclaw-kit-new").exists()


# --- tests/verify/test_macos.py's pf checks, on reconstructed pfctl listings ------------------------------------


class FakeTarget:
    """tests/verify's target, answering each command from a dict (pfctl's listings reconstructed in
    its normalised form, `port = N`, one rule per address; none recorded on a Mac)."""

    def __init__(self, settings, outputs: dict[str, str]):
        self.settings, self.outputs = settings, outputs

    def output_of(self, command: str) -> str:
        return self.outputs[command]


def pf_outputs(s) -> dict[str, str]:
    def sha(text: str) -> str:
        return hashlib.sha256(text.encode()).hexdigest()
    return {
        "pfctl -s info 2>/dev/null | head -n 3": "Status: Enabled for 0 days 00:10:00           Debug: Urgent\n",
        "pfctl -sr 2>/dev/null": 'scrub-anchor "com.apple/*" all fragment reassemble\nanchor "com.apple/*" all\n'
                                 'anchor "openclaw-kit" all\n',
        f"pfctl -a {pf.ANCHOR} -sr 2>/dev/null": "\n".join([
            f"block drop in quick on ! lo0 proto tcp from any to any port = {s.gateway_port}",
            "pass in quick inet proto udp from any port = 67 to any port = 68 keep state",
            f"pass in quick inet proto tcp from 203.0.113.0/24 to any port = {s.sshd_port} flags any keep state",
            "block drop in log quick all"]),
        f"shasum -a 256 {pf.MAIN}": f"{sha(pf.main_ruleset())}  {pf.MAIN}",
        f"shasum -a 256 {pf.PERSISTED}": f"{sha(pf.ruleset(s))}  {pf.PERSISTED}",
        f"cat {pf.PF_CONF}": recorded("pf.conf") + "".join(f"{line}\n" for line in pf.PF_CONF_LINES),
        f"launchctl print system/{pf.BOOT_LABEL}": recorded("launchctl-print-system-org.openclaw-kit.firewall.txt"),
    }


def test_verify_checks_the_running_ruleset_not_only_the_files():
    from tests.verify import test_macos as verify
    s = settings()
    verify.test_pf_is_enabled_with_the_kits_anchor_as_rendered(FakeTarget(s, pf_outputs(s)))
    verify.test_the_pf_boot_job_is_loaded_and_loads_the_kits_main_ruleset(FakeTarget(s, pf_outputs(s)))
    # The files all right, but pf running Apple's pf.conf without the kit's anchor (or the old rules).
    unreferenced = {**pf_outputs(s), "pfctl -sr 2>/dev/null": 'anchor "com.apple/*" all\n'}
    with pytest.raises(AssertionError):
        verify.test_pf_is_enabled_with_the_kits_anchor_as_rendered(FakeTarget(s, unreferenced))
    old_rules = pf_outputs(s)
    old_rules[f"pfctl -a {pf.ANCHOR} -sr 2>/dev/null"] = old_rules[f"pfctl -a {pf.ANCHOR} -sr 2>/dev/null"].replace(
        "flags any", "flags S/SA")
    with pytest.raises(AssertionError):
        verify.test_pf_is_enabled_with_the_kits_anchor_as_rendered(FakeTarget(s, old_rules))
