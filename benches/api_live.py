#!/usr/bin/env python3
"""The on-device API's live stream against the pipeline's frame rate (issue 15): the
daemon analyses the built-in sample clip as fast as it can (`pace = "fast"`), and its frame
rate (the /metrics counter `emotiond_frames_processed_total` over a measured interval) is
compared with no live client, then with N clients reading GET /v1/live (curl processes) plus
one client that never reads. Goal: within 5 %.

    cargo build --release -p emotiond
    python3 benches/api_live.py --bin target/release/emotiond --clients 100 --seconds 20
    python3 benches/api_live.py --daemon-cpus 0 --client-cpus 1 --threads 1   # the daemon on a core of its own

With --daemon-cpus/--client-cpus (taskset lists) the daemon and the clients run on separate
cores: the clients stand for apps on other machines or a kiosk's browser, and what is left is
what serving them costs the daemon itself. --live-max-fps sets api.live_max_fps (default: the
daemon's default, 30; 0: an event per analysed frame).

Prints one JSON line: fps without clients and with them, the change in percent; the pipeline
thread's CPU time per frame without and with clients (what the live stream costs the pipeline,
much less dependent on other load on the machine than the frame rate), the inference threads'
and the HTTP server's (the tokio runtime: sending the events to the clients); events the
clients received; whether the non-reading client was dropped yet.
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from benchlib import free_port


def metric(base, name):
    text = urllib.request.urlopen(base + "/metrics", timeout=10).read().decode()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise KeyError(name)


def thread_cpu(pid):
    """CPU seconds per thread name (utime + stime) of process `pid`."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                name = f.read().strip()
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
        except OSError:
            pass
    return out


def fps(base, seconds, pid):
    """Frames per second over `seconds` (after a short settling second), and CPU ms per frame
    of the pipeline thread and of the rest of the daemon (the HTTP server's runtime among it):
    the CPU figures do not depend on what else the machine runs, the frame rate does."""
    time.sleep(1.0)
    n0, t0, c0 = metric(base, "emotiond_frames_processed_total"), time.monotonic(), thread_cpu(pid)
    time.sleep(seconds)
    n1, t1, c1 = metric(base, "emotiond_frames_processed_total"), time.monotonic(), thread_cpu(pid)
    frames = n1 - n0
    per_frame = lambda pick: sum(c1[k] - c0.get(k, 0) for k in c1 if pick(k)) * 1000 / frames
    pipe = per_frame(lambda k: k == "pipeline")
    infer = per_frame(lambda k: k.startswith("infer-"))
    server = per_frame(lambda k: k.startswith("tokio"))
    return frames / (t1 - t0), pipe, infer, server


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/release/emotiond")
    ap.add_argument("--clients", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--rounds", type=int, default=2, help="alternate without/with clients this many times")
    ap.add_argument("--pace", default="fast", choices=["fast", "realtime"],
                    help="fast: frames as fast as analysis goes; realtime: the clip at its own rate (a camera)")
    ap.add_argument("--daemon-cpus", help="taskset CPU list for the daemon (e.g. 0)")
    ap.add_argument("--client-cpus", help="taskset CPU list for the live clients (e.g. 1)")
    ap.add_argument("--threads", type=int, help="pipeline.threads (default: the daemon's, one per core)")
    ap.add_argument("--live-max-fps", type=float, help="api.live_max_fps (default: the daemon's)")
    a = ap.parse_args()
    pin = lambda cpus: ["taskset", "-c", cpus] if cpus else []
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as d:
        cfg = os.path.join(d, "c.toml")
        with open(cfg, "w") as f:
            f.write(
                'device_id = "bench"\nstate_dir = ""\n[camera]\nsource = "demo"\n'
                f'pace = "{a.pace}"\n'
                '[pipeline]\nwindow_s = 5.0\n'
                + (f'threads = {a.threads}\n' if a.threads else '')
                + '[mqtt]\nenabled = false\n'
                f'[api]\nenabled = true\nlisten = "127.0.0.1:{port}"\n'
                + (f'live_max_fps = {a.live_max_fps}\n' if a.live_max_fps is not None else '')
            )
        daemon = subprocess.Popen(pin(a.daemon_cpus) + [a.bin, "run", "--config", cfg], stderr=subprocess.DEVNULL,
                                  env=dict(os.environ, RUST_LOG="warn"))
        try:
            for _ in range(300):
                try:
                    metric(base, "emotiond_frames_processed_total")
                    break
                except OSError:
                    time.sleep(0.1)
            without, with_clients, events = [], [], 0
            stuck_dropped = False
            for _ in range(a.rounds):
                without.append(fps(base, a.seconds, daemon.pid))
                outs = [tempfile.TemporaryFile() for _ in range(a.clients)]
                curls = [subprocess.Popen(pin(a.client_cpus) + ["curl", "-sN", base + "/v1/live"], stdout=o, stderr=subprocess.DEVNULL)
                         for o in outs]
                # one client that never reads: its socket buffers fill, then it is dropped
                stuck = socket.socket()
                stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                stuck.connect(("127.0.0.1", port))
                stuck.sendall(b"GET /v1/live HTTP/1.1\r\nHost: x\r\n\r\n")
                time.sleep(1.0)
                clients = metric(base, "emotiond_api_live_clients")
                with_clients.append(fps(base, a.seconds, daemon.pid))
                stuck_dropped = stuck_dropped or metric(base, "emotiond_api_live_dropped_total") > 0
                for c in curls:
                    c.terminate()
                for c in curls:
                    c.wait()
                for o in outs:
                    o.seek(0)
                    events += o.read().count(b"event: frame")
                    o.close()
                stuck.close()
                if clients < a.clients:
                    sys.exit(f"only {clients} live clients connected")
            mean = lambda xs, i: sum(x[i] for x in xs) / len(xs)
            f0, f1 = mean(without, 0), mean(with_clients, 0)
            p0, p1 = mean(without, 1), mean(with_clients, 1)
            print(json.dumps({
                "clients": a.clients, "plus_one_not_reading": True, "pace": a.pace,
                "daemon_cpus": a.daemon_cpus, "client_cpus": a.client_cpus, "threads": a.threads,
                "live_max_fps": a.live_max_fps, "seconds_per_run": a.seconds,
                "rounds": a.rounds, "fps_without": round(f0, 2), "fps_with": round(f1, 2),
                "fps_change_percent": round(100 * (f1 - f0) / f0, 2),
                "pipeline_cpu_ms_per_frame_without": round(p0, 2), "pipeline_cpu_ms_per_frame_with": round(p1, 2),
                "pipeline_cpu_change_percent": round(100 * (p1 - p0) / p0, 2),
                "inference_cpu_ms_per_frame_without": round(mean(without, 2), 2),
                "inference_cpu_ms_per_frame_with": round(mean(with_clients, 2), 2),
                "http_server_cpu_ms_per_frame_without": round(mean(without, 3), 2),
                "http_server_cpu_ms_per_frame_with": round(mean(with_clients, 3), 2),
                "runs_without_fps": [round(x[0], 2) for x in without], "runs_with_fps": [round(x[0], 2) for x in with_clients],
                "events_received": events, "not_reading_client_dropped": stuck_dropped,
            }))
        finally:
            daemon.terminate()
            daemon.wait()


if __name__ == "__main__":
    main()
