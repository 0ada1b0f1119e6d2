"""Where a clone came from, written in its vSphere Notes by the clone call itself.

Custom attributes are the asset database's columns, but vSphere writes them one value per call
(`CustomFieldsManager.SetField`, no batch form). The bot writes as custom attributes what admins
group and filter by and what strip back checks (`ManagedBy`, `Environment`, `DeployedFrom`, plus
a type's own asset attributes), and puts the full provenance, including who deployed the clone and
when, in the clone's Notes (`ConfigSpec.annotation` of `CloneVM_Task`): it costs no call, shows in
the VM's Summary in the vSphere Client and is read back by `inventory` and `refresh`. Setting
`provenance_attributes = true` under `[clones]` also writes `DeployedBy` and `DeployedAt` as custom
attributes (two more vCenter calls per clone).
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping

HEADER = "Training lab clone made by clones. The lines below are read back by the bot."
_LINE = re.compile(r"^([A-Za-z]+): (.*)$")
MAX_NOTES = 1024  # vSphere's limit on a VM's annotation is larger; stay well inside it


def provenance_note(facts: Mapping[str, str]) -> str:
    """The Notes text for a clone: a header, then one `Name: value` line per fact, in order."""
    lines = [HEADER]
    for name, value in facts.items():
        one_line = " ".join(str(value).split())
        lines.append(f"{name}: {one_line}")
    return "\n".join(lines)[:MAX_NOTES]


def read_provenance(notes: str) -> dict[str, str]:
    """The facts in Notes written by `provenance_note` (nothing from anyone else's Notes)."""
    lines = notes.splitlines()
    if not lines or lines[0] != HEADER:
        return {}
    facts: dict[str, str] = {}
    for line in lines[1:]:
        match = _LINE.match(line)
        if match:
            facts[match.group(1)] = match.group(2)
    return facts


def deployed_by_and_at(attributes: Mapping[str, str], notes: str) -> tuple[str, str]:
    """Who deployed a clone and when: its custom attributes where set (clones made with
    `provenance_attributes`, or by an earlier version), else its Notes."""
    from bot.domain.vsphere import ATTR_DEPLOYED_AT, ATTR_DEPLOYED_BY

    noted = read_provenance(notes)
    return (
        attributes.get(ATTR_DEPLOYED_BY) or noted.get(ATTR_DEPLOYED_BY, ""),
        attributes.get(ATTR_DEPLOYED_AT) or noted.get(ATTR_DEPLOYED_AT, ""),
    )


def made_by(notes: str, managed_by: str) -> dict[str, str]:
    """The provenance in Notes when they name the bot `managed_by` with the environment and the
    parent a clone came from; {} otherwise (Notes of anyone else, or too little to go on)."""
    from bot.domain.vsphere import ATTR_DEPLOYED_FROM, ATTR_ENVIRONMENT, ATTR_MANAGED_BY

    noted = read_provenance(notes)
    if noted.get(ATTR_MANAGED_BY) != managed_by:
        return {}
    if not noted.get(ATTR_ENVIRONMENT) or not noted.get(ATTR_DEPLOYED_FROM):
        return {}
    return noted


def named_by(pattern: str, name: str) -> bool:
    """Whether a type's name pattern (a str.format pattern with {n}, e.g. "TRN-CAP-{n:03}")
    makes exactly this name for some number."""
    parts = list(string.Formatter().parse(pattern))
    regex = ""
    for literal, field, _spec, _conversion in parts:
        regex += re.escape(literal)
        if field is not None:
            regex += r"(\d+)"
    match = re.fullmatch(regex, name)
    if match is None or len(match.groups()) != 1:
        return False
    try:
        return pattern.format(n=int(match.group(1))) == name
    except (KeyError, IndexError, ValueError):
        return False
