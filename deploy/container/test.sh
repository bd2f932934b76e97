#!/usr/bin/env bash
# The fleet backend in containers, end to end, with podman (issue 18):
#   1. builds the three images (deploy/container/build-images),
#   2. starts deploy/compose.yaml with podman-compose on free loopback ports,
#   3. makes a test CA, the broker's, the backend's and each device's certificates and the key
#      that signs orders (the broker speaks TLS only, under the per-device ACL), points two
#      simulated devices and one real emotiond (a file source) at the broker, each with its own
#      certificate, and checks through the API that every summary is stored; a client without a
#      certificate is refused, and a device publishing under another id stores nothing,
#   4. stops the backend container, publishes more while it is down, starts it again and checks
#      that nothing stored before is gone and nothing published meanwhile was lost,
#   5. removes the containers and volumes.
#
#   deploy/container/test.sh [--bin-dir target/debug] [--keep]
#
# --bin-dir: where emotiond and emotion-fleet (the devices' side) are; the backend image takes
# target/release/emotion-fleet (built when missing). --keep leaves the stack running.
# Runs as root; needs podman, podman-compose, buildah, debootstrap, curl, python3.
# Prints one JSON line per check and "container test: PASS" or "FAIL: ..." at the end.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
BIN=target/debug
KEEP=0
while [ $# -gt 0 ]; do
    case $1 in
        --bin-dir) BIN=$2; shift 2 ;;
        --keep) KEEP=1; shift ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done
for t in podman podman-compose buildah debootstrap curl python3 openssl mosquitto_pub; do
    command -v $t >/dev/null || { echo "FAIL: needs $t (apt-get install podman podman-compose buildah debootstrap curl openssl mosquitto-clients)"; exit 1; }
done
[ -x "$BIN/emotiond" ] && [ -x "$BIN/emotion-fleet" ] || { echo "FAIL: no $BIN/emotiond or $BIN/emotion-fleet: cargo build first"; exit 1; }
fail() { echo "FAIL: $*"; exit 1; }
T0=$SECONDS
TMP=$(mktemp -d)

# ---- this machine's container quirks, handled and said ---------------------------------------
# crun refuses cgroup v1/v2 hybrids that have controllers on the v2 side: mount those as v1.
# (cgroupfs files report size 0, so `-s` cannot tell: read the list.)
V2_CONTROLLERS=$(cat /sys/fs/cgroup/unified/cgroup.controllers 2>/dev/null || true)
if [ -n "$V2_CONTROLLERS" ]; then
    for c in $V2_CONTROLLERS; do
        echo "note: cgroup hybrid mode with '$c' on cgroup v2, which crun refuses: mounting it as v1"
        mkdir -p "/sys/fs/cgroup/$c" && mount -t cgroup -o "$c" cgroup "/sys/fs/cgroup/$c"
    done
fi
# podman's default ulimits (nofile 1048576) above this machine's hard limits: ask for less.
if [ "$(ulimit -Hn)" != unlimited ] && [ "$(ulimit -Hn)" -lt 1048576 ]; then
    echo "note: hard limit of open files $(ulimit -Hn): containers get nofile 16384, nproc 4096"
    printf '[containers]\ndefault_ulimits = ["nofile=16384:16384", "nproc=4096:4096"]\n' >"$TMP/containers.conf"
    export CONTAINERS_CONF=$TMP/containers.conf
fi

deploy/container/build-images

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
export FLEET_HTTP_PORT=$(free_port) FLEET_MQTT_PORT=$(free_port)
export FLEET_DB_PASSWORD=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
# the TLS files and the order key, as compose.yaml's comment says to make them
SECRETS=$TMP/secrets
scripts/make-test-ca --fleet "$SECRETS" mosquitto,localhost,127.0.0.1 ct-sim-0 ct-sim-1 ct-kiosk >"$TMP/ca.log" 2>&1 || { cat "$TMP/ca.log"; fail "make-test-ca"; }
"$BIN/emotion-fleet" keygen --out "$SECRETS" >/dev/null
chown 10001:10001 "$SECRETS/fleet-backend.key" "$SECRETS/fleet.key"
export FLEET_SECRETS=$SECRETS
tls() { # device → the simulator's TLS options for it
    echo --mqtt-ca "$SECRETS/ca.pem" --mqtt-cert "$SECRETS/$1.pem" --mqtt-key "$SECRETS/$1.key"
}
PROJECT=emotion-fleet-test-$$
compose() { podman-compose -p "$PROJECT" -f deploy/compose.yaml "$@"; }
cleanup() {
    if [ $KEEP = 0 ]; then compose down -v >/dev/null 2>&1 || true; fi
    rm -rf "$TMP"
}
trap cleanup EXIT
API=http://127.0.0.1:$FLEET_HTTP_PORT

compose up -d >"$TMP/compose-up.log" 2>&1 || { tail -20 "$TMP/compose-up.log"; fail "podman-compose up"; }
wait_healthy() {
    for _ in $(seq 120); do
        curl -fs "$API/healthz" >/dev/null 2>&1 && return 0
        sleep 1
    done
    podman logs "${PROJECT}_backend_1" 2>&1 | tail -20
    fail "the backend did not answer $API/healthz within 120 s"
}
wait_healthy
echo "{\"check\":\"started\",\"http\":\"$API\",\"mqtt_port\":$FLEET_MQTT_PORT,\"s\":$((SECONDS - T0))}"
for s in mosquitto postgres backend; do
    podman healthcheck run "${PROJECT}_${s}_1" >/dev/null 2>&1 || fail "the $s container's own health check fails"
done
echo '{"check":"health checks","ok":true}'
[ "$(podman inspect -f '{{.HostConfig.ReadonlyRootfs}}' "${PROJECT}_backend_1")" = true ] || fail "backend root fs not read-only"
[ "$(podman exec "${PROJECT}_backend_1" /bin/busybox id -u)" = 10001 ] || fail "backend does not run as user 10001"
podman logs "${PROJECT}_backend_1" 2>&1 | grep -q "store postgres" || fail "the backend does not use the compose file's PostgreSQL"
TOKEN=$(podman exec "${PROJECT}_backend_1" /bin/busybox cat /data/admin.token)
get() { curl -fsS -H "Authorization: Bearer $TOKEN" "$API$1"; }

# ---- devices: two simulated, one real emotiond ----------------------------------------------
sim() { # device-number more-arguments...: one simulated device, with its own certificate
    local n=$1; shift
    "$BIN/emotion-fleet" simulate --mqtt-host 127.0.0.1 --mqtt-port "$FLEET_MQTT_PORT" $(tls "ct-sim-$n") \
        --devices 1 --first "$n" --id-prefix ct-sim- --summaries 20 "$@"
}
for n in 0 1; do
    sim $n >"$TMP/sim1-$n.log" 2>&1 || { cat "$TMP/sim1-$n.log"; fail "simulate ct-sim-$n"; }
done
# refused: a client without a certificate; a device that publishes under another id (the ACL
# drops it: nothing is stored for that id)
if mosquitto_pub -h 127.0.0.1 -p "$FLEET_MQTT_PORT" --cafile "$SECRETS/ca.pem" -t emotiond/ct-x/status -m online -q 1 >"$TMP/nocert.log" 2>&1; then
    fail "the broker took a publish from a client without a certificate"
fi
if mosquitto_pub -h 127.0.0.1 -p "$FLEET_MQTT_PORT" -t emotiond/ct-x/status -m online -q 1 >>"$TMP/nocert.log" 2>&1; then
    fail "the broker took a publish over plain TCP"
fi
"$BIN/emotion-fleet" simulate --mqtt-host 127.0.0.1 --mqtt-port "$FLEET_MQTT_PORT" $(tls ct-sim-0) \
    --devices 1 --id-prefix ct-intruder- --summaries 5 >"$TMP/intruder.log" 2>&1 || { cat "$TMP/intruder.log"; fail "simulate as an intruder"; }
echo '{"check":"refused","no_certificate":true,"plain_tcp":true}'
cat >"$TMP/emotiond.toml" <<TOML
device_id = "ct-kiosk"
state_dir = "$TMP/state"
[camera]
source = "files"
paths = ["$ROOT/tests/data/astronaut_640x480.jpg", "$ROOT/tests/data/faces"]
pace = "realtime"
stills_fps = 2.0
[pipeline]
window_s = 1.0
[mqtt]
host = "127.0.0.1"
port = $FLEET_MQTT_PORT
tls = true
ca_file = "$SECRETS/ca.pem"
cert_file = "$SECRETS/ct-kiosk.pem"
key_file = "$SECRETS/ct-kiosk.key"
[updates]
enabled = false
TOML
mkdir -p "$TMP/state"
timeout 60 "$BIN/emotiond" run --stdout --config "$TMP/emotiond.toml" >"$TMP/emotiond.out" 2>"$TMP/emotiond.log" || { tail "$TMP/emotiond.log"; fail "emotiond run"; }
REAL=$(grep -c '"boot_id"' "$TMP/emotiond.out" || true)     # the summaries it published
[ "$REAL" -ge 1 ] || fail "emotiond published no summary"

count() { # device → summaries stored
    get "/api/v1/devices/$1/summaries?limit=10000" | python3 -c 'import json,sys; d=json.load(sys.stdin); d=d.get("summaries", d) if isinstance(d, dict) else d; print(len(d))'
}
wait_counts() { # sim-count real-count
    for _ in $(seq 60); do
        a=$(count ct-sim-0 2>/dev/null || echo 0); b=$(count ct-sim-1 2>/dev/null || echo 0); c=$(count ct-kiosk 2>/dev/null || echo 0)
        if [ "$a" = "$1" ] && [ "$b" = "$1" ] && [ "$c" = "$2" ]; then return 0; fi
        sleep 1
    done
    fail "stored ct-sim-0=$a ct-sim-1=$b ct-kiosk=$c, expected $1, $1 and $2"
}
wait_counts 20 "$REAL"
KIOSK=$(count ct-kiosk)
[ "$(count ct-intruder-0 2>/dev/null || echo 0)" = 0 ] || fail "summaries published by ct-sim-0 under ct-intruder-0's id were stored"
get /api/v1/devices | grep -q ct-intruder && fail "ct-intruder-0, published under by ct-sim-0, is a known device"
echo "{\"check\":\"stored\",\"ct-sim-0\":20,\"ct-sim-1\":20,\"ct-kiosk\":$KIOSK,\"emotiond_printed\":$REAL}"

# ---- the backend stopped and started again ---------------------------------------------------
podman stop -t 10 "${PROJECT}_backend_1" >/dev/null 2>&1
for n in 0 1; do
    sim $n --start-seq 20 --no-announce >"$TMP/sim2-$n.log" 2>&1 || { cat "$TMP/sim2-$n.log"; fail "simulate ct-sim-$n while the backend is down"; }
done
podman start "${PROJECT}_backend_1" >/dev/null 2>&1  # (without systemd podman logs that it cannot time health checks)
wait_healthy
wait_counts 40 "$KIOSK"
STATS=$(get /api/v1/stats)
echo "{\"check\":\"after restart\",\"ct-sim-0\":40,\"ct-sim-1\":40,\"ct-kiosk\":$(count ct-kiosk),\"stats\":$STATS}"
python3 - "$STATS" <<'PY' || fail "stats after the restart"
import json, sys
s = json.loads(sys.argv[1])
assert s.get("duplicates", 0) == 0, s
assert s.get("lost_windows", 0) == 0, s
PY
IMG=$(podman image inspect --format '{{.Size}}' localhost/emotion-fleet:latest)
echo "{\"check\":\"done\",\"backend_image_bytes\":$IMG,\"s\":$((SECONDS - T0))}"
echo "container test: PASS"
