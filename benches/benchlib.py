"""Helpers the Python benches share (imported from the benches' own folder, which Python puts
first on the path when a bench runs as `python3 benches/NAME.py`)."""

import json
import socket
import time


def free_port():
    """A TCP port free on the loopback interface right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, what, timeout=30.0, poll=0.05):
    """Wait until something listens on loopback `port`; exit naming `what` after `timeout` s."""
    t = time.time()
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            if time.time() - t > timeout:
                raise SystemExit(f"{what} did not start (nothing listens on port {port})")
            time.sleep(poll)


def out(**kv):
    """One JSON line on stdout, flushed."""
    print(json.dumps(kv), flush=True)
