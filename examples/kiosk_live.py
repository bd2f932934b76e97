#!/usr/bin/env python3
"""A tiny kiosk client for emotiond's on-device API: it follows GET /v1/live (server-sent
events) and reacts when the person in front of the camera changes mood; with --feedback it
reports what the person tapped (POST /v1/feedback). Python 3 standard library only.

    emotiond demo &                              # or `emotiond run` with [api] enabled = true
    python3 examples/kiosk_live.py               # http://127.0.0.1:8081
    python3 examples/kiosk_live.py --url http://10.0.0.7:8081 --token-file /etc/emotiond/api-token
    python3 examples/kiosk_live.py --feedback happy   # report a label once and exit

Each reaction is one line: a greeting when a face arrives, a line when its dominant emotion
changes and stays for --hold seconds, a goodbye when nobody is left.
"""

import argparse
import json
import sys
import time
import urllib.request

GREETINGS = {
    "happy": "Great to see you smiling!",
    "surprise": "Surprised? Let us show you around.",
    "neutral": "Hello! Tap the screen to start.",
    "sad": "Anything we can help with?",
    "angry": "Sorry for the wait; a person will be with you shortly.",
    "fear": "Take your time; nothing here is urgent.",
    "disgust": "Not your thing? Try the next page.",
}


def request(url, token, data=None):
    headers = {"Accept": "text/event-stream"} if data is None else {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = "Bearer " + token
    return urllib.request.urlopen(urllib.request.Request(url, data=data, headers=headers), timeout=30)


def events(url, token):
    """Yield each live event (a dict) as it arrives."""
    with request(url + "/v1/live", token) as resp:
        data = []
        for raw in resp:
            line = raw.decode("utf-8").rstrip("\r\n")
            if line.startswith("data: "):
                data.append(line[6:])
            elif line == "" and data:
                yield json.loads("\n".join(data))
                data = []


def follow(url, token, hold_s, max_events):
    shown, since, candidate, present = None, 0.0, None, False
    for n, ev in enumerate(events(url, token), 1):
        faces = ev["faces"]
        now = time.monotonic()
        if faces and not present:
            present = True
            print(f"[{len(faces)} face(s)] hello!", flush=True)
        if not faces and present:
            present, shown, candidate = False, None, None
            print("[nobody] goodbye!", flush=True)
        if faces:
            # the longest-tracked face is the one at the screen
            face = max(faces, key=lambda f: f["age_s"])
            mood = face["dominant"]
            if mood != candidate:
                candidate, since = mood, now
            if mood != shown and now - since >= hold_s:
                shown = mood
                va = f"valence {face['valence']:+.2f}, arousal {face['arousal']:+.2f}" if face["valence"] is not None else ""
                print(f"[{mood} {face['emotions'][mood]:.0%}] {GREETINGS[mood]} ({va})", flush=True)
        if max_events and n >= max_events:
            return


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", default="http://127.0.0.1:8081")
    ap.add_argument("--token-file", help="the file named by api.token_file on the device")
    ap.add_argument("--hold", type=float, default=1.0, help="seconds a new mood must last before reacting")
    ap.add_argument("--events", type=int, default=0, help="stop after this many events (0: never)")
    ap.add_argument("--feedback", metavar="LABEL", help="report this emotion (or 'wrong') and exit")
    a = ap.parse_args()
    token = open(a.token_file).read().strip() if a.token_file else None
    url = a.url.rstrip("/")
    if a.feedback:
        body = {"kind": "wrong"} if a.feedback == "wrong" else {"label": a.feedback}
        try:
            with request(url + "/v1/feedback", token, json.dumps(body).encode()) as r:
                print(r.read().decode())
        except urllib.error.HTTPError as e:
            sys.exit(f"feedback refused: {e.code} {e.read().decode()}")
        return
    while True:
        try:
            follow(url, token, a.hold, a.events)
            return
        except (OSError, urllib.error.URLError) as e:
            print(f"live stream: {e}; reconnecting in 2 s", file=sys.stderr, flush=True)
            time.sleep(2)


if __name__ == "__main__":
    main()
