#!/usr/bin/env python3
"""Counts test cases from Bazel's test logs (bazel-testlogs/**/test.xml, GoogleTest's XML) and prints them.

Prints one line per failed or skipped case, then the plain summary `N passed, N failed, N skipped`. A test target
that left no XML (crashed before writing it, or timed out) counts as one failed case, so a crash never vanishes
from the count.
"""
import os
import sys
import xml.etree.ElementTree as ET


def count(testlogs):
    passed, failed, skipped = 0, 0, 0
    notes = []
    for root, _dirs, files in os.walk(testlogs, followlinks=True):
        if "test.log" in files and "test.xml" not in files:
            failed += 1
            notes.append("FAILED (no XML: crashed or timed out): " + os.path.relpath(root, testlogs))
            continue
        if "test.xml" not in files:
            continue
        path = os.path.join(root, "test.xml")
        target = os.path.relpath(root, testlogs)
        try:
            tree = ET.parse(path)
        except ET.ParseError as err:
            failed += 1
            notes.append("FAILED (unreadable XML %s): %s" % (err, target))
            continue
        cases = list(tree.iter("testcase"))
        if not cases:
            # Bazel writes a stub XML for a target that crashed before GoogleTest wrote its own.
            suite_failures = sum(int(s.get("failures", "0")) + int(s.get("errors", "0")) for s in tree.iter("testsuite"))
            if suite_failures:
                failed += 1
                notes.append("FAILED (target): " + target)
            continue
        for case in cases:
            name = "%s: %s.%s" % (target, case.get("classname", "?"), case.get("name", "?"))
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


def main():
    testlogs = sys.argv[1] if len(sys.argv) > 1 else "bazel-testlogs"
    passed, failed, skipped, notes = count(testlogs)
    for note in sorted(notes):
        print(note)
    print("%d passed, %d failed, %d skipped" % (passed, failed, skipped))


if __name__ == "__main__":
    main()
