#!/usr/bin/env python3
"""Model update timing on loopback: from the desired-state message to `active`, and the longest
gap between two processed frames around the switch.

    cargo build --release -p emotiond -p emotion-fleet
    python3 benches/update_latency.py [--package models/packages/faceapi_expression] [--runs 3]

CI runs it once on the debug build (`--bin-dir target/debug --runs 1`) so that it cannot rot;
it exits non-zero when no run reached `active`.

Starts its own mosquitto on a free port, the release daemon on a fast-paced still (a real face),
and for each run: `emotion-fleet rollout --chunks` of a fresh version of the package into the
expression slot. Times are the broker's delivery times of the `models/state` messages as seen
by `mosquitto_sub`, measured from just before `emotion-fleet` is started. One JSON object per
line. Benchmarks report; nothing here asserts.
"""
import argparse, json, os, pathlib, shutil, socket, subprocess, tempfile, time
from benchlib import free_port

root = pathlib.Path(__file__).resolve().parent.parent
ap = argparse.ArgumentParser()
ap.add_argument("--package", default=str(root / "models/packages/faceapi_expression"))
ap.add_argument("--runs", type=int, default=3)
ap.add_argument("--bin-dir", default=str(root / "target/release"),
                help="where emotiond and emotion-fleet are (default target/release)")
args = ap.parse_args()
bin_d, bin_f = pathlib.Path(args.bin_dir) / "emotiond", pathlib.Path(args.bin_dir) / "emotion-fleet"
for b in (bin_d, bin_f):
    if not b.is_file():
        raise SystemExit(f"{b} is missing: cargo build --release -p emotiond -p emotion-fleet (or --bin-dir)")


tmp = pathlib.Path(tempfile.mkdtemp())
port = free_port()
broker = subprocess.Popen(["mosquitto", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
time.sleep(0.3)
keys = json.loads(subprocess.check_output([bin_f, "keygen", "--out", tmp / "keys"]))
cfg = tmp / "emotiond.toml"
cfg.write_text(f"""device_id = "bench"
state_dir = "{tmp / 'state'}"
[camera]
source = "files"
paths = ["{root / 'tests/data/astronaut.png'}"]
loop = true
pace = "fast"
[models]
verify_test_vectors = true
[pipeline]
window_s = 0.5
[mqtt]
host = "127.0.0.1"
port = {port}
[updates]
trusted_keys = ["{keys['public']}"]
probation_s = 5.0
""")
sub = subprocess.Popen(["mosquitto_sub", "-p", str(port), "-t", "emotiond/bench/#", "-F", "%U %t %p"],
                       stdout=subprocess.PIPE, text=True, bufsize=1)
daemon = subprocess.Popen([bin_d, "run", "--config", cfg], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def lines_until(pred, timeout=120):
    end = time.time() + timeout
    out = []
    while time.time() < end:
        line = sub.stdout.readline()
        if not line:
            break
        ts, topic, payload = line.rstrip("\n").split(" ", 2)
        out.append((float(ts), topic, payload))
        if pred(topic, payload):
            return out
    raise SystemExit(f"timed out: {out[-3:]}")


active_runs = 0
try:
    lines_until(lambda t, p: t.endswith("/summary"))
    for run in range(args.runs):
        pkg = tmp / f"pkg{run}"
        shutil.copytree(args.package, pkg)
        m = pkg / "manifest.toml"
        text = m.read_text()
        import re
        text = re.sub(r'^version = "([^"]+)"', lambda mm: f'version = "{mm.group(1)}-bench{run}"', text, count=1, flags=re.M)
        m.write_text(text)
        archive = tmp / f"pkg{run}.empkg"
        packed = json.loads(subprocess.check_output([bin_f, "model", "pack", pkg, "--out", archive]))
        subprocess.check_output([bin_f, "model", "sign", archive, "--key", tmp / "keys/fleet.key"])
        t0 = time.time()
        subprocess.check_output([bin_f, "rollout", archive, "--slot", "expression", "--device", "bench",
                                 "--chunks", "--key", tmp / "keys/fleet.key", "--host", "127.0.0.1", "--port", str(port)])
        t_sent = time.time()
        seen = lines_until(lambda t, p: t.endswith("/models/state") and json.loads(p).get("state") in ("active", "rejected"))
        states = {json.loads(p)["state"]: ts for ts, t, p in seen if t.endswith("/models/state")}
        # Summaries after the switch, until one names the new model and one more follows.
        after = lines_until(lambda t, p: t.endswith("/summary") and json.loads(p)["expression"]["id"].endswith(f"-bench{run}"))
        after += lines_until(lambda t, p: t.endswith("/summary"))
        gaps = [json.loads(p)["frame_gap_ms_max"] for _, t, p in seen + after if t.endswith("/summary")]
        gaps = [g for g in gaps if g is not None]
        print(json.dumps({
            "run": run, "package": packed["name"], "archive_bytes": packed["size"],
            "publish_s": round(t_sent - t0, 3),
            "to_verifying_s": round(states.get("verifying", float("nan")) - t0, 3),
            "to_testing_s": round(states.get("testing", float("nan")) - t0, 3),
            "to_active_s": round(states.get("active", float("nan")) - t0, 3),
            "state": "active" if "active" in states else "rejected",
            "frame_gap_ms_max_during_update": max(gaps) if gaps else None,
        }))
        active_runs += "active" in states
finally:
    for p in (daemon, sub, broker):
        p.terminate()
    shutil.rmtree(tmp, ignore_errors=True)
if active_runs == 0:
    raise SystemExit("update_latency: no run reached `active`")
