#!/usr/bin/env python3
"""Counts the test cases of one `bazel test` run from its build event file (--build_event_json_file) and prints them.

Only this run's targets are counted: the test targets the build event file names, not whatever bazel-testlogs holds
from earlier runs. For each target it reads Bazel's verdict (the test's exit status: PASSED, FAILED, TIMEOUT, ...)
and GoogleTest's XML. A target fails when:
  - Bazel says it did not pass (non-zero exit, timeout, crash), whatever its XML says;
  - its result was served from a cache (CI must execute every test it counts);
  - it ran zero cases (an empty or filtered-out suite proves nothing);
  - it was never run (its build failed).
Prints one line per failed or skipped case or target, then `N passed, N failed, N skipped` (cases; a failed target
without failed cases counts as one failed case). Exits 1 when anything failed, else 0.
"""
import json
import sys
import urllib.parse
import xml.etree.ElementTree as ET


def read_events(path):
    tests, results = [], {}
    with open(path) as f:
        for line in f:
            event = json.loads(line)
            kind = next(iter(event["id"]))
            if kind == "targetConfigured" and event.get("configured", {}).get("targetKind", "").endswith("_test rule"):
                tests.append(event["id"]["targetConfigured"]["label"])
            elif kind == "testResult":
                label = event["id"]["testResult"]["label"]
                results.setdefault(label, []).append(event.get("testResult", {}))
    return tests, results


def xml_path(result):
    for out in result.get("testActionOutput", []):
        if out.get("name") == "test.xml":
            return urllib.parse.unquote(urllib.parse.urlparse(out["uri"]).path)
    return None


def count_cases(path):
    """(passed, failed, skipped, notes) of one GoogleTest XML; None when unreadable."""
    try:
        tree = ET.parse(path)
    except (OSError, ET.ParseError):
        return None
    passed, failed, skipped, notes = 0, 0, 0, []
    for case in tree.iter("testcase"):
        name = "%s.%s" % (case.get("classname", "?"), case.get("name", "?"))
        if case.find("failure") is not None or case.find("error") is not None:
            failed += 1
            notes.append("FAILED  " + name)
        elif case.find("skipped") is not None or case.get("result") == "skipped" or case.get("status") == "notrun":
            skipped += 1
            message = case.find("skipped")
            why = (message.get("message", "") if message is not None else "").strip().replace("\n", " ")
            notes.append("SKIPPED " + name + (" (" + why[:160] + ")" if why else ""))
        else:
            passed += 1
    return passed, failed, skipped, notes


def summarize(bep_path):
    tests, results = read_events(bep_path)
    passed = failed = skipped = 0
    notes = []
    for label in sorted(set(tests)):
        attempts = results.get(label)
        if not attempts:
            failed += 1
            notes.append("FAILED (never ran: its build failed) " + label)
            continue
        for result in attempts:
            status = result.get("status", "NO_STATUS")
            cached = result.get("cachedLocally") or result.get("executionInfo", {}).get("cachedRemotely")
            cases = count_cases(xml_path(result)) if xml_path(result) else None
            target_failed = []
            if status != "PASSED":
                target_failed.append("Bazel status %s" % status)
            if cached:
                target_failed.append("result served from a cache, not executed")
            if cases is None:
                target_failed.append("no readable test.xml")
            elif cases[0] + cases[1] + cases[2] == 0:
                target_failed.append("ran zero test cases")
            if cases is not None:
                passed, failed, skipped = passed + cases[0], failed + cases[1], skipped + cases[2]
                notes += ["%s %s: %s" % (n[:8].rstrip(), label, n[8:]) for n in cases[3]]
            if target_failed and (cases is None or cases[1] == 0):
                failed += 1  # the target's failure, counted once when no case of it failed
            if target_failed:
                notes.append("FAILED (target: %s) %s" % ("; ".join(target_failed), label))
    return passed, failed, skipped, notes, len(set(tests))


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: summarize_tests.py BUILD_EVENTS.json (bazel test --build_event_json_file=...)")
    passed, failed, skipped, notes, targets = summarize(sys.argv[1])
    for note in sorted(notes):
        print(note)
    print("%d test targets; %d passed, %d failed, %d skipped" % (targets, passed, failed, skipped))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
