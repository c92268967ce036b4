"""Fake external proxies for protocol tests: tiny Python scripts with one behaviour each.

Each runs in the test's own namespace (`enter_netns=False`) and touches no network.
"""

from __future__ import annotations

import sys
from pathlib import Path

from harness.features import CORE_FEATURES

PRELUDE = """
import json, os, sys, time
def reply(obj):
    sys.stdout.write(json.dumps(obj) + "\\n"); sys.stdout.flush()
record = open(sys.argv[1], "a")
for line in sys.stdin:
    msg = json.loads(line)
    record.write(line); record.flush()
"""

HELLO_REPLYING = """
    reply(%s if msg["type"] == "hello" else {"ok": True})
    if msg["type"] == "shutdown":
        break
"""
"""A proxy answering ok to everything, with the given reply to hello."""
CORE = sorted(CORE_FEATURES)
LOCAL = "internal-traffic-policy"

BEHAVIOURS = {
    "good": """
    reply({"ok": True, "seq": msg["seq"]})
    if msg["type"] == "shutdown":
        break
""",
    "crash_on_sync": """
    if msg["type"] == "sync":
        sys.stderr.write("Traceback (most recent call last):\\nKeyError: 'boom'\\n")
        sys.exit(3)
    reply({"ok": True})
""",
    "hang_on_sync": """
    if msg["type"] == "sync":
        sys.stderr.write("thinking forever\\n"); sys.stderr.flush()
        time.sleep(600)
    reply({"ok": True})
""",
    "garbage_on_sync": """
    if msg["type"] == "sync":
        print("synced!", flush=True)
        continue
    reply({"ok": True})
""",
    "declares_version": HELLO_REPLYING % '{"ok": True, "version": "fake-proxy 0.3.1"}',
    "declares_features": HELLO_REPLYING % f'{{"ok": True, "features": {[*CORE, LOCAL]!r}}}',
    "unknown_feature": HELLO_REPLYING % f'{{"ok": True, "features": {[*CORE, "teleport"]!r}}}',
    "omits_core": HELLO_REPLYING % '{"ok": True, "features": ["clusterip-tcp"]}',
    "extra_field": """
    reply({"ok": True, "detail": "more than the protocol allows"})
""",
    "double_reply": """
    reply({"ok": True, "seq": msg["seq"]})
    if msg["type"] == "service_add":
        reply({"ok": True, "seq": msg["seq"]})
""",
    "refuse_sync": """
    reply({"ok": msg["type"] != "sync", "error": "cannot program that"})
""",
    "wrong_seq": """
    reply({"ok": True, "seq": msg["seq"] + 1})
""",
    "ignore_shutdown": """
    if msg["type"] == "shutdown":
        import signal; signal.signal(signal.SIGTERM, signal.SIG_IGN)
        time.sleep(600)
    reply({"ok": True})
""",
    "forks_child": """
    if msg["type"] == "hello":
        import subprocess
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        open(sys.argv[1] + ".child", "w").write(str(child.pid))
    reply({"ok": True})
    if msg["type"] == "shutdown":
        break
""",
    "silent_start": """
    time.sleep(600)
""",
    "old_protocol": """
    if msg["type"] == "hello" and msg["protocol"] != 0:
        reply({"ok": False, "error": "I speak protocol 0 only"})
""",
}


def fake_proxy(directory: Path, behaviour: str) -> tuple[str, Path]:
    """A command line running the fake `behaviour`, and the file it records requests in."""
    script = directory / f"fake_{behaviour}.py"
    script.write_text(PRELUDE + BEHAVIOURS[behaviour])
    record = directory / f"{behaviour}.jsonl"
    return f"{sys.executable} {script} {record}", record
