"""Which SigmaHQ and Suzaku rules convert to KQL on a documented table, per logsource family.

    python bench/kql_tables.py [--folder DIR ...] [--incumbent FILE.json]

For each folder: per family (Windows endpoint on Defender XDR, Windows event logs, Azure,
Microsoft 365, GCP, AWS, other) the rules converted to a real table (by table), the rules
converted to the generic placeholder table, and the unsupported ones with their most frequent
reasons (the field names kept, so "field 'Hashes' has no column" counts once per field).
--incumbent reads the counts of bench's pySigma run (a JSON file written by a run of
pySigma-backend-kusto in its own venv) to print beside ours.
"""
from __future__ import annotations

import argparse
import collections
import json
import re
import sys

from common import ROOT, need_corpus

sys.path.insert(0, str(ROOT))

DEFENDER = ("DeviceProcessEvents", "DeviceFileEvents", "DeviceRegistryEvents", "DeviceImageLoadEvents",
            "DeviceNetworkEvents", "DeviceEvents")


def family(logsource: dict) -> str:
    product, category, service = (logsource.get(k) for k in ("product", "category", "service"))
    if product in ("windows", "linux", "macos") and category:
        return f"{product} endpoint"
    if product == "windows":
        return "windows event log (service)"
    return {"azure": "azure", "m365": "m365", "gcp": "gcp", "aws": "aws"}.get(product, "other")


def reason(message: str) -> str:
    return re.sub(r"^.*?: (?=field|kql)", "", message).split(" in mapping ")[0][:110]


def run(folder) -> dict:
    from transpiler.backends import get
    from transpiler.errors import Unsupported
    from transpiler.rule import load_paths
    rules, errors = load_paths([folder])
    backend = get("kql")()
    out = collections.defaultdict(lambda: {"tables": collections.Counter(), "generic": 0, "unsupported": 0,
                                           "reasons": collections.Counter()})
    converted_ids = []
    for rule in rules:
        if rule.kind != "rule":
            continue
        row = out[family(rule.logsource or {})]
        try:
            query = backend.convert(rule)
        except Unsupported as e:
            row["unsupported"] += 1
            row["reasons"][reason(e.message)] += 1
            continue
        table = query.split("\n", 1)[0]
        if table == "SigmaEvents":
            row["generic"] += 1
        else:
            row["tables"][table] += 1
            converted_ids.append((str(rule.id), table))
    return out, converted_ids, len(errors)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--folder", action="append", help="rule folders (default: sigmahq-rules, suzaku-rules)")
    p.add_argument("--reasons", type=int, default=6, help="reasons shown per family")
    p.add_argument("--incumbent", help="JSON counts of pySigma-backend-kusto (see the docstring)")
    args = p.parse_args()
    corpus = need_corpus() / "rules"
    folders = args.folder or [str(corpus / "sigmahq-rules"), str(corpus / "suzaku-rules")]
    for folder in folders:
        out, ids, load_errors = run(folder)
        real = sum(sum(r["tables"].values()) for r in out.values())
        xdr = sum(n for r in out.values() for t, n in r["tables"].items() if t in DEFENDER)
        print(f"\n{folder}: {real} on a documented table ({xdr} on Defender XDR tables), "
              f"{sum(r['generic'] for r in out.values())} on the generic table, "
              f"{sum(r['unsupported'] for r in out.values())} unsupported, {load_errors} load errors")
        for name, r in sorted(out.items(), key=lambda kv: -sum(kv[1]["tables"].values()) - kv[1]["unsupported"]):
            total = sum(r["tables"].values()) + r["generic"] + r["unsupported"]
            print(f"  {name}: {total} rules: {sum(r['tables'].values())} on "
                  f"{', '.join(f'{t} {n}' for t, n in r['tables'].most_common()) or '-'}; "
                  f"generic {r['generic']}; unsupported {r['unsupported']}")
            for why, n in r["reasons"].most_common(args.reasons):
                print(f"      {n:4d}  {why}")
    if args.incumbent:
        data = json.load(open(args.incumbent))
        for pipeline, d in data.items():
            print(f"\nincumbent {pipeline}: {d['converted']} of {d['loaded']} converted")


if __name__ == "__main__":
    main()
