#!/usr/bin/env python3
"""Reference TreeSHAP values from the `shap` package for ccfraud's trees.

    python3 scripts/shap_reference.py ARTIFACT ROWS_JSON > OUT_JSON

ARTIFACT is a `ccfraud-model.json` (one header line, then the JSON payload);
ROWS_JSON is `{"kinds": ["forest", "gbdt"], "rows": [[...], ...]}` with raw
rows under the artifact's schema. For each kind, the script converts the
model's trees to shap's custom-tree format (a dict of `children_left`,
`children_right`, `children_default`, `features`, `thresholds`, `values`,
`node_sample_weight` per tree), runs `shap.TreeExplainer` (path-dependent
TreeSHAP: no background data), and writes
`{"forest": {"expected_value": e, "shap_values": [[...], ...]}, ...}`.

Semantics carried over:
- shap sends `x <= threshold` left, as ccfraud does; the forest's stored
  thresholds are f64 and rows are f32 widened to f64 (the forest's own
  comparison); the booster's thresholds are f32, read back as f32 (a row
  value often equals one: quantile bin edges are data values).
- a missing value: the forest sends NaN left; the booster goes by each
  node's learned direction (`m`). shap takes it from `children_default`.
- the forest is the mean of its trees: values × 1/T; the booster adds its
  base score (`base_offset`).
- shap uses each node's `values` entry as the node's expected value (the
  root's is the tree's expected value): internal nodes get the cover-
  weighted mean of their children.
Categorical splits (the booster's category sets) have no form in shap's
custom format: a model with one is refused.
"""

import json
import sys

import numpy as np
import shap


def load_payload(path):
    with open(path, "rb") as f:
        f.readline()  # header
        return json.loads(f.read())


def shap_tree(nodes, kind, scale):
    n = len(nodes)
    left = np.full(n, -1, dtype=np.int32)
    right = np.full(n, -1, dtype=np.int32)
    default = np.full(n, -1, dtype=np.int32)
    features = np.full(n, -2, dtype=np.int32)
    thresholds = np.full(n, -2.0, dtype=np.float64)
    values = np.zeros(n, dtype=np.float64)
    weight = np.zeros(n, dtype=np.float64)
    for i, nd in enumerate(nodes):
        weight[i] = float(nd["n"])
        if nd["l"] == 0:
            values[i] = float(nd["p"] if kind == "forest" else nd["v"]) * scale
            continue
        if nd.get("c"):
            sys.exit(f"{kind}: node {i} is a categorical split, which shap's custom trees cannot express")
        left[i], right[i] = nd["l"], nd["r"]
        features[i] = nd["f"]
        # the booster's thresholds are f32: its JSON is the shortest text
        # that reads back as that f32, so read it as f32, then widen
        t = nd["t"]
        thresholds[i] = float(t) if kind == "forest" else float(np.float32(t))
        if kind == "forest":
            default[i] = nd["l"]  # NaN > t is false: left
        else:
            default[i] = nd["l"] if nd["m"] else nd["r"]
    # children follow their parents: fill expected values bottom up
    for i in range(n - 1, -1, -1):
        if left[i] >= 0:
            wl, wr = weight[left[i]], weight[right[i]]
            values[i] = (wl * values[left[i]] + wr * values[right[i]]) / (wl + wr)
    return {
        "children_left": left,
        "children_right": right,
        "children_default": default,
        "features": features,
        "thresholds": thresholds,
        "values": values.reshape(-1, 1),
        "node_sample_weight": weight,
    }


def main():
    artifact, rows_path = sys.argv[1], sys.argv[2]
    payload = load_payload(artifact)
    with open(rows_path) as f:
        req = json.load(f)
    x = np.array(req["rows"], dtype=np.float32).astype(np.float64)
    out = {}
    for kind in req["kinds"]:
        model = next(m for m in payload["models"] if m["name"] == kind)
        est = model["estimator"]
        trees = est["trees"]
        scale = 1.0 / len(trees) if kind == "forest" else 1.0
        spec = {"trees": [shap_tree(t["nodes"], kind, scale) for t in trees]}
        if kind == "gbdt":
            spec["base_offset"] = float(est["base"])
        explainer = shap.TreeExplainer(spec, feature_perturbation="tree_path_dependent")
        values = explainer.shap_values(x, check_additivity=False)
        expected = np.asarray(explainer.expected_value, dtype=np.float64).reshape(-1)[0]
        out[kind] = {
            "expected_value": float(expected),
            "shap_values": np.asarray(values, dtype=np.float64).tolist(),
        }
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
