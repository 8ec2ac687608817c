"""Check the summary.json of `pylip digits-example` against the schema of issue 6 (and issue 16's columns)."""

from __future__ import annotations

import json
import math
import sys

REQUIRED = ("name", "hidden_layers", "L_des", "clean_accuracy", "bound", "trivial_bound")
PER_RADIUS = ("certified_accuracy", "attacked_accuracy")
# issue 16: optional (older summaries lack them), checked when present
TIGHTER = ("pairwise_certified_accuracy", "local_certified_accuracy")
TIGHTER_COUNTS = ("pairwise_certified_not_attacked", "local_certified_not_attacked")


def problems(nets: object) -> list[str]:
    if not isinstance(nets, list) or not nets:
        return ["the top level must be a non-empty list of nets"]
    found = []
    for index, net in enumerate(nets):
        where = f"net {index} ({net.get('name', '?') if isinstance(net, dict) else '?'})"
        if not isinstance(net, dict):
            found.append(f"{where}: not an object")
            continue
        found += [f"{where}: missing {key!r}" for key in REQUIRED + PER_RADIUS if key not in net]
        if net.get("L_des") is not None and net.get("bound", math.inf) > net["L_des"] * (1 + 1e-6):
            found.append(f"{where}: bound {net['bound']} exceeds L_des {net['L_des']}")
        for key in PER_RADIUS + TIGHTER:
            for eps, value in (net.get(key) or {}).items():
                float(eps)  # the radius, as a string
                if not 0.0 <= value <= 1.0:
                    found.append(f"{where}: {key}[{eps}] = {value} is not in [0, 1]")
        certified, attacked = net.get("certified_accuracy") or {}, net.get("attacked_accuracy") or {}
        found += [
            f"{where}: certified {certified[eps]} > attacked {attacked[eps]} at eps {eps}"
            for eps in certified
            if eps in attacked and certified[eps] > attacked[eps]
        ]
        for key in TIGHTER:
            tighter = net.get(key)
            if tighter is None:
                continue
            if set(tighter) != set(certified):
                found.append(f"{where}: {key} has radii {sorted(tighter)}, "
                             f"certified_accuracy {sorted(certified)}")
            for eps in tighter:
                if eps in certified and tighter[eps] < certified[eps]:
                    found.append(f"{where}: {key} {tighter[eps]} < global {certified[eps]} at eps {eps}")
                if eps in attacked and tighter[eps] > attacked[eps]:
                    found.append(f"{where}: {key} {tighter[eps]} > attacked {attacked[eps]} at eps {eps}")
        for key in TIGHTER_COUNTS:
            found += [f"{where}: {key}[{eps}] = {count}, must be 0"
                      for eps, count in (net.get(key) or {}).items() if count != 0]
    return found


def main(path: str) -> int:
    with open(path) as handle:
        nets = json.load(handle)
    found = problems(nets)
    for line in found:
        print(f"{path}: {line}", file=sys.stderr)
    print(f"{path}: {len(nets)} nets, {'schema ok' if not found else f'{len(found)} problems'}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
