"""Which rule files sigma-cli can convert in one run: run with the sigma-cli venv's Python.

    /work/venv-sigmacli/bin/python bench/sigmacli_rules.py athena FOLDER > athena.txt

`sigma convert -s` skips a rule only when pySigma raises a SigmaError; any other exception
(the backends raise NotImplementedError for keyword searches, for instance) aborts the whole
run, and so does a rule pySigma cannot load. So the paired benchmarks convert the files on which
sigma-cli neither aborts nor fails to load: this script tries each file alone, the way
`sigma convert -t TARGET -s` does, prints the surviving paths (sorted, one per line) to stdout
and the counts to stderr. Targets: athena (pySigma-backend-athena), kql (sigma-cli's `kusto`).
"""
from __future__ import annotations

import collections
import sys
from pathlib import Path

from sigma.collection import SigmaCollection
from sigma.plugins import InstalledSigmaPlugins

TARGETS = {"athena": "athena", "kql": "kusto"}


def main():
    target, folder = sys.argv[1], Path(sys.argv[2])
    backend_class = InstalledSigmaPlugins.autodiscover().backends[TARGETS[target]]
    counts, survivors = collections.Counter(), []
    for path in sorted(folder.rglob("*.yml")):
        rules = SigmaCollection.load_ruleset([path], collect_errors=True)
        if rules.errors:
            counts["load error (aborts the run)"] += 1
            continue
        backend = backend_class(collect_errors=True)
        try:
            queries = backend.convert(rules)
        except Exception:  # noqa: BLE001 - exactly what sigma-cli does not survive
            counts["aborts the run"] += 1
            continue
        survivors.append(path)
        counts["skipped (SigmaError)" if backend.errors else "converted"] += 1
        counts["queries"] += len(queries)
    for path in survivors:
        print(path)
    print(f"{target}: {len(survivors)} files survive of {sum(1 for _ in folder.rglob('*.yml'))}: "
          f"{dict(counts)}", file=sys.stderr)


if __name__ == "__main__":
    main()
