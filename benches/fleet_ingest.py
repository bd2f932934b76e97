#!/usr/bin/env python3
"""Fleet backend throughput and footprint: summaries ingested per second from simulated
devices, with the embedded store (SQLite) and with PostgreSQL; chart latency from rollups;
the backend's peak RSS.

    cargo build --release -p emotion-fleet
    python3 benches/fleet_ingest.py [--devices 10000] [--summaries 5] [--store sqlite,postgres]

CI runs it once, small, on the debug build (`--bin-dir target/debug --devices 200
--summaries 2`) so that it cannot rot; it exits non-zero when not every summary is stored.

Starts its own mosquitto (deploy/mosquitto-fleet.conf's settings) on a free port and, per
store, a fresh `emotion-fleet serve`; PostgreSQL is a throwaway cluster (initdb as the
`postgres` user when run as root, fsync on). `emotion-fleet simulate` publishes status,
health and model state for every device, then the summaries (round-robin over devices, one
MQTT connection, QoS 1, every 3rd in postcard); the time runs from the simulator's start
to the last summary stored, read from GET /api/v1/stats every 100 ms (so a small run is
dominated by that resolution and the simulator's start). One JSON object
per line. `serve_cpu_s` is the CPU time the backend itself used meanwhile (all its threads),
and `per_serve_cpu_s` the summaries stored per second of it: what one core given to the
backend alone would sustain, where the wall-clock rate shares two cores with the broker and
the simulator. Benchmarks report; nothing here asserts beyond "all stored".
"""
import argparse, json, os, sys, pathlib, shutil, socket, subprocess, tempfile, threading, time, urllib.request
from benchlib import free_port, wait_port, out

root = pathlib.Path(__file__).resolve().parent.parent
ap = argparse.ArgumentParser()
ap.add_argument("--devices", type=int, default=10000)
ap.add_argument("--summaries", type=int, default=5, help="per device")
ap.add_argument("--store", default="sqlite,postgres")
ap.add_argument("--bin-dir", default=str(root / "target/release"))
ap.add_argument("--latency-probes", type=int, default=20,
                help="publish-to-dashboard probes per store (0: none)")
ap.add_argument("--latency-load", type=int, default=1000,
                help="summaries per second from other devices while probing")
ap.add_argument("--chart-devices", type=int, default=0,
                help="then seed this many devices (all in one group) with one summary a minute "
                     "over --chart-hours and time the charts (0: skip)")
ap.add_argument("--chart-hours", type=int, default=24)
ap.add_argument("--broker-inflight", type=int, default=0,
                help="mosquitto's max_inflight_messages (0: no limit, as deploy/mosquitto-fleet.conf; "
                     "with 1000, mosquitto 2.0.11 stalled after ~1.04 M messages)")
args = ap.parse_args()
fleet = pathlib.Path(args.bin_dir) / "emotion-fleet"
if not fleet.is_file():
    raise SystemExit(f"{fleet} is missing: cargo build --release -p emotion-fleet (or --bin-dir)")


def latency(store, hport, token, mqtt):
    """Publish-to-dashboard latency: a probe device publishes one summary (a fresh
    `emotion-fleet simulate` each time) while other devices publish --latency-load summaries a
    second; the time runs from the probe's start to the summary's event on the dashboard's
    live stream (GET /api/v1/events, what the dashboard's charts read). An upper bound: it
    includes the probe's process start and MQTT connection."""
    seen, stop = {}, threading.Event()

    def reader():
        req = urllib.request.Request(f"http://127.0.0.1:{hport}/api/v1/events",
                                     headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(req, timeout=120) as r:
            event = None
            for raw in r:
                if stop.is_set():
                    return
                line = raw.decode(errors="replace")
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:") and event == "summary" and '"lat' in line:
                    seen[json.loads(line[5:])["device_id"]] = time.time()

    threading.Thread(target=reader, daemon=True).start()
    time.sleep(0.5)  # the stream is open
    load = subprocess.Popen([str(fleet), "simulate", *mqtt, "--devices", "500", "--summaries", "1000000",
                             "--rate", str(args.latency_load), "--id-prefix", "load-"],
                            stdout=subprocess.DEVNULL) if args.latency_load > 0 else None
    time.sleep(1)
    lat = []
    for i in range(args.latency_probes):
        dev = f"lat{i}-0"
        t = time.time()
        subprocess.run([str(fleet), "simulate", *mqtt, "--devices", "1", "--summaries", "1",
                        "--id-prefix", f"lat{i}-", "--no-announce"], check=True, stdout=subprocess.DEVNULL)
        while dev not in seen and time.time() - t < 30:
            time.sleep(0.002)
        if dev not in seen:
            raise SystemExit(f"fleet_ingest: probe {dev} never reached the live stream ({store})")
        lat.append(seen[dev] - t)
        time.sleep(0.2)
    stop.set()
    if load:
        load.kill()
        load.wait()
    lat.sort()
    pick = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]
    out(bench="fleet_latency", store=store, probes=len(lat), load_per_s=args.latency_load,
        publish_to_dashboard_ms_p50=round(pick(0.5) * 1000, 1),
        publish_to_dashboard_ms_p95=round(pick(0.95) * 1000, 1),
        publish_to_dashboard_ms_max=round(lat[-1] * 1000, 1))


def charts(store, api, put, mqtt, stored_before):
    """Chart latency at scale: --chart-devices devices, every one in group `chart`, each with a
    summary for every minute of the last --chart-hours (so every device has a per-minute rollup
    in every minute, as a device publishing every 10 s would), then the dashboard's series
    requests timed (median of 5, after one unmeasured call): the fleet, the group and one
    device, per minute and per hour."""
    n, hours = args.chart_devices, args.chart_hours
    now_ms = int(time.time() * 1000)
    per = hours * 60
    t0 = time.time()
    # an hour at a time, each stored before the next: the broker's queue for the backend's
    # session is bounded (max_queued_messages) and drops what overflows it
    for h in range(hours):
        subprocess.run([str(fleet), "simulate", *mqtt, "--devices", str(n), "--summaries", "60",
                        "--start-seq", str(h * 60), "--id-prefix", "chart-", "--window-ms", "60000",
                        "--start-ms", str(now_ms - (hours - h) * 3600000)] + (["--no-announce"] if h else []),
                       check=True, stdout=subprocess.DEVNULL)
        want = stored_before + n * 60 * (h + 1)
        deadline = time.time() + 600
        while api("/api/v1/stats")[0]["stored"] < want:
            if time.time() > deadline:
                raise SystemExit(f"fleet_ingest: chart seed hour {h} not stored within 10 min ({store})")
            time.sleep(0.2)
    seed_s = time.time() - t0
    for i in range(n):
        put(f"/api/v1/devices/chart-{i}/groups", {"groups": ["chart"], "tags": []})
    frm = now_ms - hours * 3600000

    def timed(q):
        body, _ = api(q)
        ts = sorted(api(q)[1] for _ in range(5))
        return round(ts[2] * 1000, 1), len(body["points"])

    res = {}
    for name, scope in (("fleet", ""), ("group", "&group=chart"), ("device", "&device=chart-1")):
        for step in ("minute", "hour"):
            ms, pts = timed(f"/api/v1/series?from_ms={frm}&to_ms={now_ms}&step={step}{scope}")
            res[f"{name}_{step}_ms"] = ms
            res[f"{name}_{step}_points"] = pts
    out(bench="fleet_chart", store=store, devices=n, hours=hours, summaries=n * per,
        seed_s=round(seed_s, 1), **res)


tmp = pathlib.Path(tempfile.mkdtemp(prefix="fleet-bench-"))
procs = []
try:
    mport = free_port()
    conf = tmp / "mosquitto.conf"
    conf.write_text(f"listener {mport} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                    f"max_inflight_messages {args.broker_inflight}\nmax_queued_messages 1000000\n")
    mosq = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    procs.append(subprocess.Popen([mosq, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    wait_port(mport, "mosquitto")

    for store in args.store.split(","):
        db = None
        pg_ctl = None
        if store == "postgres":
            pg = sorted(pathlib.Path("/usr/lib/postgresql").glob("*/bin"))[-1]
            pgdir = pathlib.Path(tempfile.mkdtemp(prefix="fleet-bench-pg-"))
            as_pg = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
            if as_pg:
                shutil.chown(pgdir, "postgres", "postgres")
            pport = free_port()
            subprocess.run(as_pg + [str(pg / "initdb"), "-D", str(pgdir / "data"), "-A", "trust", "-U", "fleet"],
                           check=True, stdout=subprocess.DEVNULL)
            pg_ctl = as_pg + [str(pg / "pg_ctl"), "-D", str(pgdir / "data")]
            subprocess.run(pg_ctl + ["-o", f"-p {pport} -k {pgdir} -c listen_addresses=127.0.0.1",
                                     "-l", str(pgdir / "log"), "-w", "start"], check=True, stdout=subprocess.DEVNULL)
            db = f"postgres://fleet@127.0.0.1:{pport}/postgres"
        data = tmp / f"data-{store}"
        hport = free_port()
        cmd = [str(fleet), "serve", "--data", str(data), "--http", f"127.0.0.1:{hport}",
               "--mqtt-host", "127.0.0.1", "--mqtt-port", str(mport), "--replica", f"bench-{store}",
               "--share-group", f"bench-{store}"]  # the other store's replica is gone for good
        if db:
            cmd += ["--db", db]
        log = open(tmp / f"serve-{store}.log", "w")
        serve = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log,
                                 env=dict(os.environ, RUST_LOG="info,sqlx=warn"))
        ready = json.loads(serve.stdout.readline())
        token = (data / "admin.token").read_text().strip()

        def api(path):
            req = urllib.request.Request(f"http://127.0.0.1:{hport}{path}",
                                         headers={"Authorization": f"Bearer {token}"})
            t = time.perf_counter()
            with urllib.request.urlopen(req, timeout=60) as r:
                body = json.loads(r.read())
            return body, time.perf_counter() - t

        def put(path, body):
            req = urllib.request.Request(f"http://127.0.0.1:{hport}{path}", method="PUT",
                                         data=json.dumps(body).encode(),
                                         headers={"Authorization": f"Bearer {token}",
                                                  "Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=60) as r:
                r.read()

        want = args.devices * args.summaries
        now_ms = int(time.time() * 1000)
        base = ["--mqtt-host", "127.0.0.1", "--mqtt-port", str(mport), "--devices", str(args.devices)]
        # the devices announce themselves first (status, health, model state: 3 messages each)
        subprocess.run([str(fleet), "simulate", *base, "--summaries", "0"], check=True, stdout=subprocess.DEVNULL)
        while api("/api/v1/stats")[0]["received"] < 3 * args.devices:
            time.sleep(0.1)
        def cpu_s(pid):  # user + system CPU seconds of a process so far
            f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
            return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")

        # then the summaries, timed from the first published to the last stored
        cpu0 = cpu_s(serve.pid)
        t0 = time.time()
        sim = subprocess.Popen([str(fleet), "simulate", *base, "--summaries", str(args.summaries), "--no-announce",
                                "--postcard-every", "3", "--start-ms", str(now_ms - args.summaries * 10000)],
                               stdout=subprocess.PIPE)
        stored = 0
        deadline = time.time() + 600
        while time.time() < deadline:
            stored = api("/api/v1/stats")[0]["stored"]
            if stored >= want:
                break
            time.sleep(0.1)
        t_end = time.time()
        serve_cpu = cpu_s(serve.pid) - cpu0
        rep = json.loads(sim.communicate(timeout=600)[0])
        rss_kb = int(next(l.split()[1] for l in open(f"/proc/{serve.pid}/status") if l.startswith("VmHWM:")))
        _, t_devices = api("/api/v1/devices")
        series, t_series = api(f"/api/v1/series?from_ms={now_ms - 86400000}&step=minute")
        _, t_device_series = api(f"/api/v1/series?device=sim-1&from_ms={now_ms - 86400000}&step=minute")
        rate = stored / max(t_end - t0, 1e-9)
        out(bench="fleet_ingest", store=store, devices=args.devices, summaries=want, stored=stored,
            ingest_per_s=round(rate, 1), publish_per_s=round(rep["per_s"], 1),
            serve_cpu_s=round(serve_cpu, 2), per_serve_cpu_s=round(stored / max(serve_cpu, 1e-9), 1),
            serve_peak_rss_mib=round(rss_kb / 1024, 1),
            devices_route_ms=round(t_devices * 1000, 1),
            fleet_series_24h_minute_ms=round(t_series * 1000, 1), fleet_series_points=len(series["points"]),
            device_series_24h_minute_ms=round(t_device_series * 1000, 1),
            bin=str(fleet))
        if args.latency_probes > 0:
            latency(store, hport, token, base[:4])
        if args.chart_devices > 0:
            charts(store, api, put, base[:4], api("/api/v1/stats")[0]["stored"])
        t_stop = time.time()
        serve.terminate()
        try:
            serve.wait(timeout=60)
            out(bench="fleet_ingest", store=store, shutdown_s=round(time.time() - t_stop, 2))
        except subprocess.TimeoutExpired:
            serve.kill()
            print((tmp / f"serve-{store}.log").read_text()[-3000:], file=sys.stderr)
            raise SystemExit(f"fleet_ingest: serve ({store}) did not stop within 60 s of SIGTERM")
        if pg_ctl:
            subprocess.run(pg_ctl + ["-m", "fast", "stop"], stdout=subprocess.DEVNULL)
            shutil.rmtree(pgdir, ignore_errors=True)
        if stored < want:
            raise SystemExit(f"fleet_ingest: only {stored} of {want} summaries stored ({store})")
finally:
    for p in procs:
        p.kill()
    shutil.rmtree(tmp, ignore_errors=True)
