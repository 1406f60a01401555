"""Every number listed in benchmarks/claims.json is quoted in its doc and equals its record, rounded as quoted:
a number in the docs cannot drift from the run that produced it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())  # wherever this file moves
CLAIMS = json.loads((ROOT / "benchmarks" / "claims.json").read_text())["claims"]


def record_value(claim: dict) -> float:
    """The record's number for a claim (before ``scale``)."""
    path = ROOT / claim["record"]
    if path.suffix == ".jsonl":
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        sel = [r for r in rows if all(r.get(k) == v for k, v in claim["select"].items())]
        assert sel, f"no line of {claim['record']} matches {claim['select']}"
        if claim.get("reduce", "mean") != "mean":
            raise ValueError(f"unknown reduce {claim['reduce']!r}")
        return float(np.mean([r["value"] for r in sel]))
    node = json.loads(path.read_text())
    key = claim["key"]
    for part in key if isinstance(key, list) else key.split("."):  # a list when a name holds a dot
        node = node[int(part)] if isinstance(node, list) else node[part]
    if claim.get("field"):  # a list of per-item records: the mean of one field
        return float(np.mean([item[claim["field"]] for item in node]))
    return float(node)


def matches(quoted: str, value: float) -> bool:
    """``value`` rounds to the quoted number at the quoted number of decimals."""
    text = quoted.replace(",", "")
    digits = len(text.split(".")[1]) if "." in text else 0
    return abs(value - float(text)) <= 0.5 * 10.0 ** -digits + 1e-9


def test_matches_rounding_rule():
    assert matches("0.973", 0.97280) and matches("0.973", 0.9734999) and not matches("0.973", 0.9736)
    assert matches("3,180", 3180) and matches("98", 97.98) and not matches("98", 98.6)
    assert matches("2.8", 170.475 / 60) and not matches("2.9", 170.475 / 60)


@pytest.mark.parametrize("claim", CLAIMS, ids=[f"{c['doc']}:{c['quote']}:{c['number']}" for c in CLAIMS])
def test_claim_matches_its_record(claim):
    doc = (ROOT / claim["doc"]).read_text()
    assert claim["quote"] in doc, f"{claim['doc']} no longer says {claim['quote']!r}: update benchmarks/claims.json"
    assert claim["number"] in claim["quote"]
    value = record_value(claim) * float(claim.get("scale", 1.0))
    assert matches(claim["number"], value), f"{claim['doc']} quotes {claim['number']}, {claim['record']} gives {value:.6g}"
