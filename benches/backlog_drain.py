#!/usr/bin/env python3
"""Time to drain a one-hour backlog: 360 summaries (one hour of the default 10 s window)
waiting in the daemon's outbox on disk, delivered once the broker comes back.

    cargo build --release -p emotiond
    python3 benches/backlog_drain.py [--summaries 360] [--bin-dir target/release]

1. The backlog, made by the daemon itself: `emotiond run` (release build) on a looping file
   camera (tests/data/astronaut_640x480.jpg, realtime at 10 fps, built-in models) with
   `pipeline.window_s = 0.1` and `mqtt.port` a free loopback port where nothing listens, so
   every summary waits in the outbox (state_dir/outbox, one file each). It is stopped
   (SIGTERM) once the outbox holds --summaries files; files beyond that (the newest) are
   removed, so the backlog is exactly --summaries summaries of one boot. A 0.1 s window
   summary has the same fields as a 10 s one (counts are smaller).
2. The subscriber's session: mosquitto (persistence on, its own folder) starts on that port,
   `mosquitto_sub -c -q 1` registers a persistent session for emotiond/+/summary, and the
   broker stops: what the broker holds for the subscriber survives its restart, so no
   summary is lost to a race between the daemon and the subscriber.
3. `emotiond run` again, now with the default window (10 s), on the same state_dir: it loads
   the backlog and fails to connect (its reconnect backoff starts at 250 ms and doubles).
   Right after a failed attempt past its first second the broker starts (t0) and the
   subscriber reconnects to its session (`mosquitto_sub -d`: its CONNACK is timed), before
   the daemon's next attempt. The daemon's CONNACK is timed from its log ("mqtt: connected"),
   each summary as the subscriber prints it.

Result, one JSON line: `subscriber_s` and `reconnect_s` (t0 to the subscriber's and to the
daemon's CONNACK: the latter is the daemon's backoff), `subscriber_first` (true when the
subscriber was connected first, so arrivals follow the daemon's publishing, not the broker
replaying a queue), `drain_s` (the daemon's CONNACK to the last backlog summary at the
subscriber), `total_s` (t0 to the last), `rate` (backlog summaries per second of
`drain_s`), `received`, `duplicates`, `missing` (of the backlog, matched by boot id and
seq), `outbox_left` (summary files after the run). Exits 1 when a backlog summary is missing
or came twice. The daemon's backoff doubles up to 30 s, so after a real hour without a
broker `reconnect_s` can be up to 30 s; the drain itself does not depend on it. ~50 s.
"""
import argparse, json, os, pathlib, shutil, signal, socket, subprocess, sys, tempfile, threading, time
from benchlib import free_port, wait_port

root = pathlib.Path(__file__).resolve().parent.parent
ap = argparse.ArgumentParser()
ap.add_argument("--summaries", type=int, default=360, help="backlog size (360 = one hour of 10 s windows)")
ap.add_argument("--bin-dir", default=str(root / "target/release"))
ap.add_argument("--fill-timeout", type=float, default=300, help="seconds allowed to fill the outbox")
args = ap.parse_args()
emotiond = pathlib.Path(args.bin_dir) / "emotiond"
if not emotiond.is_file():
    raise SystemExit(f"{emotiond} is missing: cargo build --release -p emotiond (or --bin-dir)")
mosq = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
if not os.path.exists(mosq) or not shutil.which("mosquitto_sub"):
    raise SystemExit("mosquitto and mosquitto_sub are needed (apt-get install mosquitto mosquitto-clients)")


def config(tmp, port, window_s):
    p = tmp / f"emotiond-{window_s}.toml"
    p.write_text(
        f'device_id = "bench"\nstate_dir = "{tmp / "state"}"\n'
        f'[camera]\nsource = "files"\npaths = ["{root / "tests/data/astronaut_640x480.jpg"}"]\n'
        f'pace = "realtime"\nstills_fps = 10.0\nloop = true\n'
        f"[pipeline]\nwindow_s = {window_s}\n"
        f'[mqtt]\nhost = "127.0.0.1"\nport = {port}\nencoding = "json"\n'
        f"[updates]\nenabled = false\n")
    return p


def stop(p):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def sums(outbox):
    return sorted(n for n in os.listdir(outbox) if n.endswith(".sum")) if outbox.is_dir() else []


tmp = pathlib.Path(tempfile.mkdtemp(prefix="backlog-bench-"))
procs = []
try:
    port = free_port()
    outbox = tmp / "state" / "outbox"
    (tmp / "state").mkdir()
    log1 = open(tmp / "fill.log", "w")

    # 1. the backlog, broker away
    t = time.time()
    d = subprocess.Popen([emotiond, "run", "--config", config(tmp, port, 0.1)],
                         stdout=subprocess.DEVNULL, stderr=log1)
    procs.append(d)
    while len(sums(outbox)) < args.summaries:
        if d.poll() is not None:
            raise SystemExit(f"emotiond exited while filling the outbox: {(tmp / 'fill.log').read_text()[-2000:]}")
        if time.time() - t > args.fill_timeout:
            raise SystemExit(f"outbox holds {len(sums(outbox))} summaries after {args.fill_timeout} s")
        time.sleep(0.05)
    stop(d)
    fill_s = time.time() - t
    names = sums(outbox)
    for n in names[args.summaries:]:
        (outbox / n).unlink()
    names = names[: args.summaries]
    # <unix ms>-<boot id>-<seq>.sum
    backlog = {(int(n.split("-")[1], 16), int(n.split("-")[2].split(".")[0])) for n in names}
    if len(backlog) != args.summaries or len({b for b, _ in backlog}) != 1:
        raise SystemExit(f"outbox: {len(backlog)} distinct summaries from {len({b for b, _ in backlog})} boots")
    payload_bytes = sum((outbox / n).stat().st_size for n in names)

    # 2. the subscriber's persistent session
    pdir = tmp / "mosquitto"
    pdir.mkdir()
    os.chmod(tmp, 0o755)
    os.chmod(pdir, 0o777)  # mosquitto started as root runs as the mosquitto user
    conf = tmp / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
                    f"persistence_location {pdir}/\nmax_queued_messages 100000\n")
    # line-buffered: each summary (and the -d CONNACK line) is read when it arrives
    sub_cmd = (["stdbuf", "-oL"] if shutil.which("stdbuf") else []) + ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-i", "backlog-bench-sub",
               "-c", "-q", "1", "-t", "emotiond/+/summary"]
    b = subprocess.Popen([mosq, "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs.append(b)
    wait_port(port, "mosquitto", poll=0.005)
    subprocess.run(sub_cmd + ["-E"], check=True, timeout=10)
    stop(b)
    if not any(pdir.iterdir()):
        raise SystemExit(f"mosquitto saved no persistence file in {pdir}")

    # 3. the daemon on its backlog, then the broker: started right after a failed connect
    # (logged at debug level), so the subscriber is back in its session before the daemon's
    # next attempt (its backoff starts at 250 ms)
    env = dict(os.environ, RUST_LOG="info,emotiond::publish::mqtt=debug")
    d = subprocess.Popen([emotiond, "run", "--config", config(tmp, port, 10.0)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    procs.append(d)
    failed, connected, log2 = threading.Event(), [], []
    started = time.time()

    def daemon_log():
        for line in d.stderr:
            log2.append(line)
            if "cannot connect to" in line and time.time() - started > 1.0:
                failed.set()
            if "mqtt: connected to" in line and not connected:
                connected.append(time.time())

    threading.Thread(target=daemon_log, daemon=True).start()
    if not failed.wait(60):
        raise SystemExit("emotiond did not try the broker: " + "".join(log2[-20:]))
    t0 = time.time()
    b = subprocess.Popen([mosq, "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs.append(b)
    wait_port(port, "mosquitto", poll=0.005)
    s = subprocess.Popen(sub_cmd + ["-d"], stdout=subprocess.PIPE, text=True)
    procs.append(s)
    seen, times, dups, done, sub_connack = {}, [], 0, threading.Event(), []

    def read():
        global dups
        for line in s.stdout:
            now = time.time()
            if "received CONNACK" in line and not sub_connack:
                sub_connack.append(now)
            try:
                m = json.loads(line)
                k = (m["boot_id"], m["seq"])
            except (ValueError, KeyError, TypeError):
                continue
            if k in backlog:
                if k in seen:
                    dups += 1
                else:
                    seen[k] = now
                    times.append(now)
                    if len(seen) == len(backlog):
                        done.set()

    threading.Thread(target=read, daemon=True).start()
    done.wait(120)
    time.sleep(1.0)  # a duplicate would come right after
    stop(d)
    left = len(sums(outbox))
    missing = len(backlog) - len(seen)
    r = {"bench": "backlog_drain", "summaries": args.summaries, "fill_s": round(fill_s, 1),
         "backlog_bytes": payload_bytes, "received": len(seen), "duplicates": dups,
         "missing": missing, "outbox_left": left}
    if sub_connack:
        r["subscriber_s"] = round(sub_connack[0] - t0, 3)
    if connected:
        r["reconnect_s"] = round(connected[0] - t0, 3)
        r["subscriber_first"] = bool(sub_connack) and sub_connack[0] < connected[0]
    if times and connected:
        r.update(drain_s=round(times[-1] - connected[0], 3), total_s=round(times[-1] - t0, 3),
                 rate=round(len(times) / max(times[-1] - connected[0], 1e-9), 1))
    print(json.dumps(r), flush=True)
    sys.exit(1 if missing or dups else 0)
finally:
    for p in reversed(procs):
        stop(p)
    shutil.rmtree(tmp, ignore_errors=True)
