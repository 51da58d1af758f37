#!/usr/bin/env python3
"""Adds up meson's JSON test logs and prints one 'N passed, N failed' line."""
import json
import sys

PASSED = {"OK", "EXPECTEDFAIL"}
SKIPPED = {"SKIP"}

passed = failed = skipped = 0
for path in sys.argv[1:]:
    try:
        with open(path) as f:
            results = [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        continue
    for r in results:
        if r["result"] in PASSED:
            passed += 1
        elif r["result"] in SKIPPED:
            skipped += 1
        else:
            failed += 1
            print(f"failed: {path.split('/')[0]}: {r['name']} ({r['result']})")
line = f"{passed} passed, {failed} failed"
if skipped:
    line += f", {skipped} skipped"
print(line)
