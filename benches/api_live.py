#!/usr/bin/env python3
"""The on-device API's live stream against the pipeline's frame rate (issue 15): the
daemon analyses the built-in sample clip as fast as it can (`pace = "fast"`), and its frame
rate (the /metrics counter `emotiond_frames_processed_total` over a measured interval) is
compared with no live client, then with N clients reading GET /v1/live (curl processes) plus
one client that never reads. Goal: within 5 %.

    cargo build --release -p emotiond
    python3 benches/api_live.py --bin target/release/emotiond --clients 100 --seconds 20

Prints one JSON line: fps without clients, with clients, the change in percent, events the
clients received, and whether the non-reading client was dropped.
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


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def metric(base, name):
    text = urllib.request.urlopen(base + "/metrics", timeout=10).read().decode()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise KeyError(name)


def fps(base, seconds):
    """Frames per second over `seconds` (after a short settling second)."""
    time.sleep(1.0)
    n0, t0 = metric(base, "emotiond_frames_processed_total"), time.monotonic()
    time.sleep(seconds)
    n1, t1 = metric(base, "emotiond_frames_processed_total"), time.monotonic()
    return (n1 - n0) / (t1 - t0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/release/emotiond")
    ap.add_argument("--clients", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--rounds", type=int, default=2, help="alternate without/with clients this many times")
    a = ap.parse_args()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as d:
        cfg = os.path.join(d, "c.toml")
        with open(cfg, "w") as f:
            f.write(
                'device_id = "bench"\nstate_dir = ""\n[camera]\nsource = "demo"\npace = "fast"\n'
                '[pipeline]\nwindow_s = 5.0\n[mqtt]\nenabled = false\n'
                f'[api]\nenabled = true\nlisten = "127.0.0.1:{port}"\n'
            )
        daemon = subprocess.Popen([a.bin, "run", "--config", cfg], stderr=subprocess.DEVNULL,
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
                without.append(fps(base, a.seconds))
                outs = [tempfile.TemporaryFile() for _ in range(a.clients)]
                curls = [subprocess.Popen(["curl", "-sN", base + "/v1/live"], stdout=o, stderr=subprocess.DEVNULL)
                         for o in outs]
                # one client that never reads: its socket buffers fill, then it is dropped
                stuck = socket.create_connection(("127.0.0.1", port))
                stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                stuck.sendall(b"GET /v1/live HTTP/1.1\r\nHost: x\r\n\r\n")
                time.sleep(1.0)
                clients = metric(base, "emotiond_api_live_clients")
                with_clients.append(fps(base, a.seconds))
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
            mean = lambda xs: sum(xs) / len(xs)
            f0, f1 = mean(without), mean(with_clients)
            print(json.dumps({
                "clients": a.clients, "plus_one_not_reading": True, "seconds_per_run": a.seconds,
                "rounds": a.rounds, "fps_without": round(f0, 2), "fps_with": round(f1, 2),
                "change_percent": round(100 * (f1 - f0) / f0, 2),
                "runs_without": [round(x, 2) for x in without], "runs_with": [round(x, 2) for x in with_clients],
                "events_received": events, "not_reading_client_dropped": stuck_dropped,
            }))
        finally:
            daemon.terminate()
            daemon.wait()


if __name__ == "__main__":
    main()
