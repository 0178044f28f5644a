"""What bash 3.2, macOS's /bin/bash, does not have: the constructs of bash 4 and later, found in a script's text.

shellcheck checks a script against bash as a whole and checkbashisms against POSIX sh; neither knows
bash 3.2. Quoted here-documents (embedded Python, say) are not shell and are left out, as are comments.
"""

from __future__ import annotations

import re

NAME = r"[A-Za-z_][A-Za-z0-9_]*"
# (what bash 3.2 lacks, the pattern that finds it)
BASH4 = [
    ("mapfile/readarray (bash 4.0)", re.compile(r"(^|[\s;&|(`])(mapfile|readarray)\b")),
    ("case modification ${x,,} ${x^^} (bash 4.0)", re.compile(r"\$\{" + NAME + r"(\[[^]]*\])?(,|\^)")),
    ("associative arrays, namerefs, declare -g (bash 4.x)",
     re.compile(r"(^|[\s;&|(])(declare|typeset|local|readonly)\s+(-[a-zA-Z]*\s+)*-[a-zA-Z]*[Agn]")),
    ("&>> (bash 4.0)", re.compile(r"&>>")),
    ("|& (bash 4.0)", re.compile(r"\|&")),
    (";& or ;;& in case (bash 4.0)", re.compile(r";;?&")),
    ("${x@Q} and other @ transformations (bash 4.4)", re.compile(r"\$\{" + NAME + r"(\[[^]]*\])?@[QEPAaKkULu]\}")),
    ("negative array index ${a[-1]} (bash 4.3)", re.compile(r"\$\{" + NAME + r"\[-")),
    ("coproc (bash 4.0)", re.compile(r"(^|[\s;&|(])coproc\b")),
    ("{fd}> redirection (bash 4.1)", re.compile(r"(?<!\$)\{" + NAME + r"\}[<>]")),
    ("shopt globstar/lastpipe/autocd etc. (bash 4.x)",
     re.compile(r"\bshopt\s+-[su]\s+.*\b(globstar|lastpipe|autocd|checkjobs|dirspell|direxpand|inherit_errexit)\b")),
    ("wait -n (bash 4.3)", re.compile(r"\bwait\s+-n\b")),
    ("[[ -v name ]] (bash 4.2)", re.compile(r"\[\[\s+(!\s+)?-v\s")),
    ("printf %(...)T (bash 4.2)", re.compile(r"%\([^)]*\)T")),
    ("$EPOCHSECONDS/$EPOCHREALTIME/$BASHPID (bash 4-5)", re.compile(r"\$\{?(EPOCHSECONDS|EPOCHREALTIME|BASHPID)\b")),
]
HEREDOC = re.compile(r"<<-?\s*(['\"])(\w+)\1")


def shell_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) of what bash parses: no comment lines, no quoted here-document bodies."""
    lines, end = [], None
    for number, line in enumerate(text.splitlines(), 1):
        if end is not None:
            if line.strip() == end:
                end = None
            continue
        if line.lstrip().startswith("#"):
            continue
        lines.append((number, line))
        quoted = HEREDOC.search(line)
        if quoted:
            end = quoted.group(2)
    return lines


def bash4_constructs(text: str) -> list[str]:
    """`line N: what (the line)` for every construct bash 3.2 cannot run."""
    return [f"line {number}: {what}: {line.strip()}"
            for number, line in shell_lines(text) for what, pattern in BASH4 if pattern.search(line)]
