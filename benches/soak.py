#!/usr/bin/env python3
"""Soak (issue 13 item 6; a script, not in CI): the daemon runs for an hour on a looping Y4M
clip with audio from a looping WAV, publishing through a TCP relay that is cut every few
minutes, while a subscriber that stays connected to the broker collects every summary.

    cargo build --release -p emotiond
    python3 benches/soak.py --bin target/release/emotiond --minutes 60

Every --sample-s it reads the daemon's resident memory (VmRSS) and open file descriptors from
/proc. At the end the link stays up until the daemon's summaries have arrived, the daemon is
stopped with SIGTERM (it finishes its window) and the script prints one JSON line: the
summaries the daemon says it made ("pipeline ended after N summaries" in its log), how many
distinct (boot_id, seq) arrived, duplicates, holes in seq, RSS and descriptors at the start
(after --warmup-s) and at the end, the maximum, the number of cuts and of summaries with a
voice block. `lost` is the daemon's count minus the distinct summaries received (goal 0).
Exit code 1 when a summary is lost or RSS/descriptors grew past --max-growth.
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from benchlib import free_port, wait_port

ROOT = Path(__file__).resolve().parent.parent


class Relay:
    """A TCP relay to the broker that can be cut (every connection closed, new ones closed
    at once) and restored: the daemon sees a link that drops, the broker stays up."""

    def __init__(self, target):
        self.target = target
        self.up = True
        self.conns = []
        self.lock = threading.Lock()
        self.srv = socket.socket()
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(16)
        self.port = self.srv.getsockname()[1]
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            c, _ = self.srv.accept()
            if not self.up:
                c.close()
                continue
            try:
                b = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                c.close()
                continue
            with self.lock:
                self.conns += [c, b]
            for a, z in ((c, b), (b, c)):
                threading.Thread(target=self.pipe, args=(a, z), daemon=True).start()

    @staticmethod
    def pipe(a, z):
        try:
            while True:
                d = a.recv(65536)
                if not d:
                    break
                z.sendall(d)
        except OSError:
            pass
        for s in (a, z):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self):
        self.up = False
        with self.lock:
            for s in self.conns:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
            self.conns = []

    def restore(self):
        self.up = True


def proc_sample(pid):
    with open(f"/proc/{pid}/status") as f:
        st = dict(line.split(":", 1) for line in f if ":" in line)
    return {
        "rss_kib": int(st["VmRSS"].split()[0]),
        "fds": len(os.listdir(f"/proc/{pid}/fd")),
        "threads": int(st["Threads"]),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=str(ROOT / "target/release/emotiond"))
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--cut-every-s", type=float, default=240.0, help="link cut every N s")
    ap.add_argument("--cut-for-s", type=float, default=45.0, help="for this long")
    ap.add_argument("--window-s", type=float, default=10.0)
    ap.add_argument("--sample-s", type=float, default=30.0)
    ap.add_argument("--warmup-s", type=float, default=120.0,
                    help="the start figures are taken this long after the start")
    ap.add_argument("--y4m", default=str(ROOT / "daemon/assets/demo.y4m"))
    ap.add_argument("--wav", default="/usr/share/sounds/alsa/Front_Center.wav",
                    help="speech to loop (Debian's alsa-utils ships it)")
    ap.add_argument("--max-growth", type=float, default=0.10,
                    help="fail when RSS grew by more than this fraction from start to end")
    ap.add_argument("--samples-out", help="write every sample as JSON lines to this file")
    a = ap.parse_args()
    for p in (a.bin, a.y4m, a.wav):
        if not os.path.exists(p):
            sys.exit(f"soak: {p} not found")
    mosq = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    sub_bin = shutil.which("mosquitto_sub")
    if not os.path.exists(mosq) or not sub_bin:
        sys.exit("soak: needs mosquitto and mosquitto-clients (scripts/setup --test)")

    tmp = Path(tempfile.mkdtemp(prefix="emotiond-soak-"))
    mport = free_port()
    (tmp / "mosquitto.conf").write_text(
        f"listener {mport} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 100000\n"
        "max_inflight_messages 0\n")
    broker = subprocess.Popen([mosq, "-c", str(tmp / "mosquitto.conf")],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(mport, "mosquitto")
    relay = Relay(mport)
    device = "soak"
    sub = subprocess.Popen([sub_bin, "-h", "127.0.0.1", "-p", str(mport), "-q", "1", "-v",
                            "-t", f"emotiond/{device}/summary"],
                           stdout=subprocess.PIPE, text=True)
    got = []

    def read_sub():
        for line in sub.stdout:
            topic, _, payload = line.partition(" ")
            try:
                s = json.loads(payload)
                got.append((s["boot_id"], s["seq"], s.get("voice") is not None))
            except (ValueError, KeyError):
                got.append(("malformed", line[:80], False))

    threading.Thread(target=read_sub, daemon=True).start()
    time.sleep(0.5)

    cfg = tmp / "emotiond.toml"
    cfg.write_text(
        f'device_id = "{device}"\nstate_dir = "{tmp / "state"}"\n'
        f'[camera]\nsource = "files"\npaths = ["{a.y4m}"]\nloop = true\n'
        f'[audio]\nenabled = true\nsource = "wav"\npaths = ["{a.wav}"]\nloop = true\n'
        f"[pipeline]\nwindow_s = {a.window_s}\n"
        f'[mqtt]\nhost = "127.0.0.1"\nport = {relay.port}\nkeep_alive_s = 5\n')
    log = open(tmp / "emotiond.log", "w")
    daemon = subprocess.Popen([a.bin, "run", "--config", str(cfg)],
                              env={**os.environ, "RUST_LOG": "info,tract_linalg=warn"},
                              stdout=subprocess.DEVNULL, stderr=log)
    t0 = time.time()
    end = t0 + a.minutes * 60
    samples, cuts = [], 0
    next_cut = t0 + a.cut_every_s
    next_sample = t0
    restore_at = None
    out = open(a.samples_out, "w") if a.samples_out else None
    try:
        while time.time() < end:
            now = time.time()
            if daemon.poll() is not None:
                sys.exit(f"soak: the daemon exited ({daemon.returncode}) after "
                         f"{now - t0:.0f} s; log: {tmp / 'emotiond.log'}")
            if restore_at is None and now >= next_cut and now + a.cut_for_s < end - 60:
                relay.cut()
                cuts += 1
                restore_at = now + a.cut_for_s
            if restore_at is not None and now >= restore_at:
                relay.restore()
                restore_at = None
                next_cut = now + a.cut_every_s
            if now >= next_sample:
                s = {"t_s": round(now - t0, 1), **proc_sample(daemon.pid),
                     "received": len(got), "link": "up" if relay.up else "cut"}
                samples.append(s)
                if out:
                    out.write(json.dumps(s) + "\n")
                    out.flush()
                next_sample += a.sample_s
            time.sleep(0.2)
        relay.restore()
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(timeout=60)
        except subprocess.TimeoutExpired:
            daemon.kill()
            sys.exit("soak: the daemon did not stop within 60 s of SIGTERM")
        log.close()
        made = None
        for line in open(tmp / "emotiond.log"):
            m = re.search(r"pipeline ended after (\d+) summaries", line)
            if m:
                made = int(m.group(1))
        # what the daemon made has had time to arrive (it delivers before it exits)
        time.sleep(2)
    finally:
        for p in (daemon, sub, broker):
            if p.poll() is None:
                p.kill()
    keys = [(b, s) for b, s, _ in got if b != "malformed"]
    distinct = set(keys)
    holes = 0
    for boot in {b for b, _ in distinct}:
        seqs = sorted(s for b, s in distinct if b == boot)
        holes += (seqs[-1] - seqs[0] + 1) - len(seqs)
    start = next((s for s in samples if s["t_s"] >= a.warmup_s), samples[0])
    last = samples[-1]
    result = {
        "bench": "soak",
        "minutes": round((time.time() - t0) / 60, 1),
        "window_s": a.window_s,
        "cuts": cuts,
        "cut_for_s": a.cut_for_s,
        "summaries_made": made,
        "received_distinct": len(distinct),
        "duplicates": len(keys) - len(distinct),
        "malformed": len(got) - len(keys),
        "holes": holes,
        "lost": None if made is None else made - len(distinct),
        "with_voice": sum(1 for b, s, v in got if v),
        "boots": len({b for b, _ in distinct}),
        "rss_kib_start": start["rss_kib"],
        "rss_kib_end": last["rss_kib"],
        "rss_kib_max": max(s["rss_kib"] for s in samples),
        "fds_start": start["fds"],
        "fds_end": last["fds"],
        "threads_start": start["threads"],
        "threads_end": last["threads"],
        "start_at_s": start["t_s"],
        "samples": len(samples),
        "log": str(tmp / "emotiond.log"),
    }
    print(json.dumps(result))
    grew = last["rss_kib"] > start["rss_kib"] * (1 + a.max_growth)
    bad = (result["lost"] is None or result["lost"] != 0 or holes != 0
           or last["fds"] > start["fds"] or grew)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
