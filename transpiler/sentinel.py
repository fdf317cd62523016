"""The ATT&CK tactics and techniques Microsoft Sentinel accepts for an analytics rule.

Azure-Sentinel's CI (.script/tests/detectionTemplateSchemaValidation, NoTechniquesWithoutMatchingTactics)
refuses a rule with a technique its technique -> tactic table does not know, or whose tactic the
rule does not list. That table (transpiler/data/sentinel_attack.json) lags ATT&CK: T1654 is not in
it, and it puts T1098 under Persistence only. Versions of the check differ: one wants one of the
technique's tactics listed, another all of them. So a rule gets every tactic the table gives its
techniques, which passes both; techniques the table lacks are left out. Each change is a note for
the report, so nothing is dropped silently.
"""
from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path

# ATT&CK v19 split Defense Evasion into Stealth and Defense Impairment; Sentinel has neither.
ALIASES = {"Stealth": "DefenseEvasion", "DefenseImpairment": "DefenseEvasion"}


@cache
def table() -> tuple[tuple, dict]:
    """(Sentinel's tactic names in matrix order, technique id -> its tactics in that order)."""
    data = json.loads((Path(__file__).parent / "data" / "sentinel_attack.json").read_text(encoding="utf-8"))
    homes: dict = {}
    for tactic in data["tactics"]:
        for tid in data["techniques"][tactic]:
            homes.setdefault(tid, []).append(tactic)
    return tuple(data["tactics"]), homes


def pascal(name: str) -> str:
    """Command and Control -> CommandAndControl (Sentinel's tactic names)."""
    return "".join(word[:1].upper() + word[1:] for word in re.split(r"[\s_-]+", str(name)))


def attack(tactics, techniques) -> dict:
    """Sentinel's tactics and techniques for a rule's ATT&CK tactics ({name}) and techniques
    ({id, parent, sub}), as formats.attack reads them from its tags, with a note per change."""
    names, homes = table()
    wanted, notes = [], []
    for t in tactics:
        name = ALIASES.get(pascal(t["name"]), pascal(t["name"]))
        if name in names:
            wanted.append(name)
        else:
            notes.append(f"tactic {t['name']} left out: Microsoft Sentinel has no such tactic")
    kept = []
    for t in techniques:
        found = homes.get(t["parent"])
        if not found:
            notes.append(f"technique {t['id']} left out: not in Microsoft Sentinel's technique table")
            continue
        kept.append(t)
        missing = [h for h in found if h not in wanted]
        if missing:
            wanted += missing
            notes.append(f"tactic {', '.join(missing)} added for {t['id']}: Sentinel's table puts {t['parent']} "
                         f"under {', '.join(found)}")
    return {"tactics": [n for n in names if n in wanted],
            "techniques": [t["id"] for t in kept],
            "parents": list(dict.fromkeys(t["parent"] for t in kept)),
            "subs": [t["id"] for t in kept if t["sub"]],
            "notes": list(dict.fromkeys(notes))}
