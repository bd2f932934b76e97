#!/usr/bin/env bash
# emotiond against the kernel's real `vivid` V4L2 driver, in a QEMU/TCG guest running Debian's kernel.
#
# Proves the daemon's V4L2 path (open, format negotiation, mmap streaming, YUYV decode) delivers
# frames into summaries, that it reports the camera `unavailable` when the device vanishes, and
# that it reopens it and delivers frames again when it comes back; after an injected EIO; and
# after a wedge (vivid drops every buffer: no frame, no error), also across a SIGTERM while wedged.
#
#   sudo tests/vm/vivid.sh [path/to/emotiond]      (default: target/debug/emotiond)
#
# Runs as root on Debian 12; installs what it needs with apt-get when something is missing.
# Environment: KEEP=1 keeps the work directory; VM_TIMEOUT (default 300) bounds the guest;
# LOGDIR=dir copies console.log, mqtt.log and mosquitto.log there; GUEST_RUST_LOG (default info).
#
# Verdict: a PASS or FAIL line per check; a check this run cannot make (a build without [audio], a
# kernel whose vivid lacks the EIO control, a guest too slow to capture audio in real time) is a
# "NOT RUN: <check>: <why>" line instead; the last line counts passed, failed and not run. Exit 1
# when any check failed.
set -euo pipefail

HERE=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${1:-$HERE/target/debug/emotiond}
VM_TIMEOUT=${VM_TIMEOUT:-300}
[ -x "$BIN" ] || { echo "vivid.sh: no executable emotiond at $BIN" >&2; exit 2; }
BIN=$(readlink -f "$BIN")

log() { echo "== vivid.sh: $*"; }

# ---- packages -------------------------------------------------------------------------------
need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
ls /boot/vmlinuz-* >/dev/null 2>&1 || need+=(linux-image-amd64)
# busybox-static: /bin/busybox exists and is not dynamically linked (ldd fails on a static binary)
{ [ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1; } || need+=(busybox-static)
command -v modprobe >/dev/null || need+=(kmod)
command -v cpio >/dev/null || need+=(cpio)
command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
command -v mosquitto_sub >/dev/null || need+=(mosquitto-clients)
command -v v4l2-ctl >/dev/null || need+=(v4l-utils)
{ command -v aplay >/dev/null && [ -f /usr/share/sounds/alsa/Front_Center.wav ]; } || need+=(alsa-utils)
if [ ${#need[@]} -gt 0 ]; then
    log "installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends "${need[@]}" >/dev/null \
        || { apt-get update >/dev/null && apt-get install -y --no-install-recommends "${need[@]}" >/dev/null; }
fi
MOSQUITTO=$(command -v mosquitto || echo /usr/sbin/mosquitto)

# ---- kernel -----------------------------------------------------------------------------------
KVER=
for k in $(ls -1 /boot/vmlinuz-* | sort -V -r); do
    v=${k#/boot/vmlinuz-}
    if [ -d "/lib/modules/$v" ] && modprobe -S "$v" --show-depends vivid >/dev/null 2>&1; then KVER=$v; break; fi
done
[ -n "$KVER" ] || { echo "vivid.sh: no /boot/vmlinuz-<ver> with a vivid module in /lib/modules/<ver>" >&2; exit 2; }
KERNEL=/boot/vmlinuz-$KVER
log "kernel $KERNEL; daemon $BIN"

# ---- work dir, broker, subscriber ---------------------------------------------------------------
WORK=$(mktemp -d /tmp/emotiond-vivid.XXXXXX)
BROKER_PID=; SUB_PID=
cleanup() {
    [ -n "$SUB_PID" ] && kill "$SUB_PID" 2>/dev/null || true
    [ -n "$BROKER_PID" ] && kill "$BROKER_PID" 2>/dev/null || true
    wait 2>/dev/null || true
    if [ "${KEEP:-0}" = 1 ]; then echo "== vivid.sh: kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$WORK/mosquitto.conf" <<EOF
listener $PORT 127.0.0.1
allow_anonymous true
persistence false
log_type all
log_timestamp_format %H:%M:%S
EOF
"$MOSQUITTO" -c "$WORK/mosquitto.conf" > "$WORK/mosquitto.log" 2>&1 &
BROKER_PID=$!
for _ in $(seq 50); do
    python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$PORT),0.2)" 2>/dev/null && break
    sleep 0.1
done
mosquitto_sub -h 127.0.0.1 -p "$PORT" -v -t 'emotiond/vm-1/#' > "$WORK/mqtt.log" 2>&1 &
SUB_PID=$!
log "broker on 127.0.0.1:$PORT (guest: 10.0.2.2:$PORT)"

# ---- initramfs ---------------------------------------------------------------------------------
R=$WORK/root
mkdir -p "$R"/{bin,sbin,etc,proc,sys,dev,tmp,mods,usr/bin}
cp /bin/busybox "$R/bin/busybox"
for a in $("$R/bin/busybox" --list); do [ -e "$R/bin/$a" ] || ln -s busybox "$R/bin/$a"; done

# modules, in dependency order, de-duplicated; compressed ones decompressed (busybox insmod)
: > "$R/mods/order"
for m in vivid snd-aloop virtio_pci virtio_net; do
    modprobe -S "$KVER" --show-depends "$m" | awk '$1=="insmod"{print $2}'
done | awk '!seen[$0]++' | while read -r ko; do
    base=$(basename "$ko")
    case "$ko" in
        *.ko.xz) xz -dc "$ko" > "$R/mods/${base%.xz}"; base=${base%.xz} ;;
        *.ko.zst) zstd -qdc "$ko" > "$R/mods/${base%.zst}"; base=${base%.zst} ;;
        *.ko.gz) gzip -dc "$ko" > "$R/mods/${base%.gz}"; base=${base%.gz} ;;
        *) cp "$ko" "$R/mods/$base" ;;
    esac
    echo "$base" >> "$R/mods/order"
done

copy_with_libs() { # $1 host path, $2 path in the guest
    mkdir -p "$R/$(dirname "$2")"
    cp "$1" "$R/$2"
    ldd "$1" 2>/dev/null | grep -o '/[^ ]*' | while read -r lib; do
        [ -e "$R/$lib" ] && continue
        mkdir -p "$R/$(dirname "$lib")"
        cp -L "$lib" "$R/$lib"
    done
}
# the daemon, stripped (the debug build is ~380 MB of debug info)
strip -o "$WORK/emotiond" "$BIN" 2>/dev/null || cp "$BIN" "$WORK/emotiond"
copy_with_libs "$WORK/emotiond" /usr/bin/emotiond
copy_with_libs "$(command -v v4l2-ctl)" /usr/bin/v4l2-ctl
# the sound side: aplay feeds a real recording into the loopback card's playback side; alsa-lib
# needs its configuration to open hw: devices
copy_with_libs "$(command -v aplay)" /usr/bin/aplay
mkdir -p "$R/usr/share/alsa" "$R/usr/share/sounds/alsa"
cp -r /usr/share/alsa/. "$R/usr/share/alsa/"
cp /usr/share/sounds/alsa/Front_Center.wav /usr/share/sounds/alsa/Front_Left.wav "$R/usr/share/sounds/alsa/"

# the daemon's config, checked on the host first (a stale binary that rejects a key fails here, not after a boot)
cat > "$R/etc/emotiond.toml" <<EOF
device_id = "vm-1"
state_dir = "/tmp/state"
[camera]
source = "v4l2"
device = "/dev/video0"
width = 640
height = 360
fps = 10
format = "YUYV"
[pipeline]
window_s = 3.0
# TCG emulates the guest 20-50x slower than a board: a frame's inference takes seconds, which
# the stall watchdog (2 s by default) would take for a hung engine
[models.watchdog]
stall_ms = 60000
[mqtt]
host = "10.0.2.2"
port = $PORT
EOF
# the microphone: the capture side of snd-aloop (a build without audio rejects the [audio] table
# as an unknown field: then the audio checks are NOT RUN; any other rejection is an error)
AUDIO=0
AUDIO_NOT_RUN=
cp "$R/etc/emotiond.toml" "$WORK/video-only.toml"
printf '[audio]\nenabled = true\nsource = "alsa"\ndevice = "hw:Loopback,1,0"\n' >> "$R/etc/emotiond.toml"
if "$BIN" config --config "$R/etc/emotiond.toml" > /dev/null 2> "$WORK/audio-config.err"; then
    AUDIO=1
elif grep -q 'unknown field `audio`' "$WORK/audio-config.err"; then
    AUDIO_NOT_RUN='this build has no [audio] (its config rejects the table as an unknown field)'
    log "$AUDIO_NOT_RUN: the snd-aloop phase is not run"
    cp "$WORK/video-only.toml" "$R/etc/emotiond.toml"
else
    echo "vivid.sh: $BIN rejects the [audio] test config:" >&2; cat "$WORK/audio-config.err" >&2; exit 2
fi
if ! "$BIN" config --config "$R/etc/emotiond.toml" > /dev/null 2> "$WORK/config.err"; then
    echo "vivid.sh: $BIN rejects the test config (stale build?):" >&2; cat "$WORK/config.err" >&2; exit 2
fi

cat > "$R/init" <<EOF
#!/bin/sh
PORT=$PORT
AUDIO=$AUDIO
GUEST_RUST_LOG='${GUEST_RUST_LOG:-info}'
EOF
cat >> "$R/init" <<'EOF'
export PATH=/bin:/sbin:/usr/bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev; mount -t tmpfs tmp /tmp
say() { echo "VM[$(cut -d' ' -f1 /proc/uptime)]: $*"; }
say "init up"
while read -r m; do insmod /mods/$m || say "insmod $m FAILED"; done < /mods/order
say "modules loaded: $(ls /dev/video* 2>/dev/null | tr '\n' ' ')"
ip link set lo up; ip link set eth0 up; ip addr add 10.0.2.15/24 dev eth0; ip route add default via 10.0.2.2
v4l2-ctl -d /dev/video0 --info 2>&1 | grep -E 'Driver name|Card type' | sed 's/^/VM: /'
say "vivid capture formats: $(v4l2-ctl -d /dev/video0 --list-formats 2>&1 | grep -cE "^\s*\[") offered; YUYV: $(v4l2-ctl -d /dev/video0 --list-formats 2>&1 | grep -c "'YUYV'"), MJPG: $(v4l2-ctl -d /dev/video0 --list-formats 2>&1 | grep -c "'MJPG'")"
v4l2-ctl -d /dev/video0 -l 2>&1 | grep -iE 'disconnect|inject|dropped' | sed 's/^/VM: control: /'
mkdir -p /tmp/state
say "sound cards: $(grep -c Loopback /proc/asound/cards 2>/dev/null) loopback"
if [ "$AUDIO" = 1 ]; then
    # speech (48 kHz mono) into the playback side, over and over; the daemon captures the
    # other side (the loopback holds the rate at 48 kHz: the daemon resamples to 16 kHz)
    ( while :; do aplay -q -D plughw:Loopback,0,0 /usr/share/sounds/alsa/Front_Center.wav /usr/share/sounds/alsa/Front_Left.wav 2>&1 | sed 's/^/VM: aplay: /'; done ) &
    say "MARK audio feed started"
fi
say "MARK check"
RUST_LOG=warn emotiond check --json --config /etc/emotiond.toml 2>/dev/null | sed 's/^/VM-CHECK /'
say "MARK start daemon"
RUST_LOG=$GUEST_RUST_LOG RUST_LOG_STYLE=never emotiond run --config /etc/emotiond.toml &
D=$!
sleep 25
kill -0 $D 2>/dev/null || { say "MARK daemon is not running; giving up"; poweroff -f; }
say "MARK unplug"
if err=$(rmmod vivid 2>&1); then
    say "rmmod vivid: ok (device not held)"
else
    say "rmmod vivid: $err"
    say "rmmod vivid refused while the daemon holds /dev/video0; pressing vivid's 'disconnect' control"
    v4l2-ctl -d /dev/video0 --set-ctrl=disconnect=1 2>&1 | sed 's/^/VM: v4l2-ctl: /'
    n=0
    until rmmod vivid 2>/dev/null; do
        n=$((n+1)); [ $n -ge 60 ] && { say "rmmod vivid still refused after 30 s"; break; }
        sleep 0.5
    done
    [ $n -lt 60 ] && say "rmmod vivid: ok after the daemon closed the device"
fi
say "video nodes now: $(ls /dev/video* 2>/dev/null | tr '\n' ' ')"
sleep 10
say "MARK replug"
insmod /mods/vivid.ko && say "insmod vivid: ok: $(ls /dev/video* 2>/dev/null | tr '\n' ' ')"
sleep 20
say "MARK inject buffer error flag"
# one buffer completed with V4L2_BUF_FLAG_ERROR (informational: is it counted as skipped?)
v4l2-ctl -d /dev/video0 --set-ctrl=inject_v4l2_buf_flag_error=1 2>&1 | sed 's/^/VM: v4l2-ctl: /'
sleep 4
say "MARK inject EIO"
# a fatal streaming error (vb2_queue_error: VIDIOC_DQBUF fails with EIO) on a device that stays
# present. Whether it was injected is v4l2-ctl's exit status (not whether it printed anything);
# the guest's clock after it bounds the injection, for the summaries' window_start_ms.
out=$(v4l2-ctl -d /dev/video0 --set-ctrl=inject_fatal_streaming_error=1 2>&1)
rc=$?
[ -n "$out" ] && echo "$out" | sed 's/^/VM: v4l2-ctl: /'
if [ $rc -eq 0 ]; then
    say "MARK EIO injected before $(date +%s) s since the epoch"
else
    say "EIO NOT INJECTED: v4l2-ctl exit $rc: $(echo "$out" | tr '\n' ' ')"
fi
sleep 15
say "MARK wedge"
# vivid's "Percentage of Dropped Buffers" at 100: the stream stays on, no buffer comes back and
# no error either (a wedged camera); the daemon must notice (camera.frame_timeout_ms) and reopen
out=$(v4l2-ctl -d /dev/video0 --set-ctrl=percentage_of_dropped_buffers=100 2>&1)
rc=$?
[ -n "$out" ] && echo "$out" | sed 's/^/VM: v4l2-ctl: /'
if [ $rc -eq 0 ]; then
    say "MARK wedged at $(date +%s) s since the epoch"
    sleep 15
    v4l2-ctl -d /dev/video0 --set-ctrl=percentage_of_dropped_buffers=0 2>&1 | sed 's/^/VM: v4l2-ctl: /'
    say "MARK unwedged at $(date +%s) s since the epoch"
    sleep 20
    # wedged again, then SIGTERM: shutdown must not hang on the capture thread
    v4l2-ctl -d /dev/video0 --set-ctrl=percentage_of_dropped_buffers=100 2>&1 | sed 's/^/VM: v4l2-ctl: /'
    say "MARK wedged for the shutdown"
    sleep 8
else
    say "WEDGE NOT INJECTED: v4l2-ctl exit $rc: $(echo "$out" | tr '\n' ' ')"
fi
say "MARK stop daemon"
t_stop=$(date +%s)
kill -TERM $D
# a hung shutdown is killed after 40 s (exit status 137, a failed check)
( sleep 40; kill -KILL $D 2>/dev/null && say "MARK daemon killed: no exit 40 s after SIGTERM" ) &
wait $D; say "daemon exit status $? after $(( $(date +%s) - t_stop )) s"
say "MARK done"
poweroff -f
EOF
chmod +x "$R/init"
(cd "$R" && find . | cpio -o -H newc --quiet | gzip -1) > "$WORK/initrd.cpio.gz"
log "initramfs $(du -h "$WORK/initrd.cpio.gz" | cut -f1) ($(wc -l < "$R/mods/order") modules)"

# ---- boot -------------------------------------------------------------------------------------
log "booting (TCG, up to ${VM_TIMEOUT}s)"
t0=$(date +%s)
set +e
timeout "$VM_TIMEOUT" qemu-system-x86_64 -accel tcg -m 1024 -smp 2 -nographic -no-reboot \
    -kernel "$KERNEL" -initrd "$WORK/initrd.cpio.gz" -append "console=ttyS0 quiet panic=-1" \
    -netdev user,id=n0 -device virtio-net-pci,netdev=n0,romfile= < /dev/null 2>&1 | tr -d '\r' | tee "$WORK/console.log"
qrc=${PIPESTATUS[0]}
set -e
log "guest finished in $(( $(date +%s) - t0 )) s (qemu exit $qrc)"
sleep 1   # let the subscriber write the last messages
[ -n "${LOGDIR:-}" ] && cp "$WORK/console.log" "$WORK/mqtt.log" "$WORK/mosquitto.log" "$LOGDIR/" || true

# ---- verdict ----------------------------------------------------------------------------------
python3 - "$WORK/mqtt.log" "$WORK/console.log" "$AUDIO_NOT_RUN" <<'PY'
import json, re, sys
mqtt, console, audio_not_run = sys.argv[1], sys.argv[2], sys.argv[3]
events = []  # (kind, dict) in arrival order
for line in open(mqtt, errors="replace"):
    topic, _, payload = line.rstrip("\n").partition(" ")
    kind = topic.rsplit("/", 1)[-1]
    try:
        events.append((kind, json.loads(payload)))
    except ValueError:
        events.append((kind, payload))
print("-- MQTT, as received --")
for kind, p in events:
    if kind == "summary":
        print(f"summary seq={p.get('seq')} frames_processed={p.get('frames_processed')} dropped={p.get('frames_dropped')} "
              f"skipped={p.get('frames_skipped')} camera={p.get('camera')} faces={p.get('faces_seen')}")
    elif kind == "health" and isinstance(p, dict):
        print(f"health camera={json.dumps(p.get('camera'))} summaries_sent={p.get('summaries_sent')}")
    else:
        print(f"{kind} {p}")

def cam_state(kind, p):
    if kind == "summary": return p.get("camera")
    if kind == "health" and isinstance(p, dict): return (p.get("camera") or {}).get("state")
    return None

ok = lambda k, p: k == "summary" and p.get("frames_processed", 0) > 0 and p.get("camera") == "ok"
i_before = next((i for i, (k, p) in enumerate(events) if ok(k, p)), None)
i_gone = None if i_before is None else next(
    (i for i, (k, p) in enumerate(events) if i > i_before and cam_state(k, p) == "unavailable"), None)
i_after = None if i_gone is None else next((i for i, (k, p) in enumerate(events) if i > i_gone and ok(k, p)), None)
reconnects = [p["camera"].get("reconnects", 0) for k, p in events
              if k == "health" and isinstance(p, dict) and isinstance(p.get("camera"), dict)]
con = open(console, errors="replace").read()
checks = {
    "summary with frames_processed > 0 and camera ok before the unplug": i_before is not None,
    "camera unavailable (health or summary) after that": i_gone is not None,
    "summary with frames_processed > 0 and camera ok after the re-insert": i_after is not None,
    "health camera.reconnects >= 1": bool(reconnects) and max(reconnects) >= 1,
    "daemon exited 0 on SIGTERM": "daemon exit status 0" in con,
}
not_run = {}  # check -> why this run could not make it
# the injected EIO (second outage, device stays present): another reconnect, frames after it
EIO_CHECKS = [
    "EIO from VIDIOC_DQBUF logged as unavailable",
    "camera ok again after the EIO (log)",
    "health camera.reconnects >= 2",
    "summary with frames_processed > 0 and camera ok from a window begun after the EIO",
]
eio_at = con.find("MARK inject EIO")
injected = re.search(r"MARK EIO injected before (\d+) s", con)
refused = re.search(r"EIO NOT INJECTED: (.*)", con)
if injected:
    tail = con[eio_at:]
    checks[EIO_CHECKS[0]] = "unavailable: capture failed: Input/output error" in tail
    checks[EIO_CHECKS[1]] = "camera ok:" in tail.split("unavailable: capture failed", 1)[-1]
    checks[EIO_CHECKS[2]] = bool(reconnects) and max(reconnects) >= 2
    # the guest's clock read after the injection, rounded up: a window starting then began after it
    after_ms = (int(injected.group(1)) + 1) * 1000
    after = [p for k, p in events if ok(k, p) and p.get("window_start_ms", 0) >= after_ms]
    print(f"info: {len(after)} summaries with frames from windows begun after the EIO (>= {after_ms} ms)")
    checks[EIO_CHECKS[3]] = bool(after)
elif refused:
    for name in EIO_CHECKS:
        not_run[name] = f"vivid did not accept inject_fatal_streaming_error ({refused.group(1).strip()})"
else:
    checks["the guest reached the EIO injection"] = False
# the wedge (vivid delivers no buffer and no error): noticed within the 15 s it lasts, the
# camera reopened and frames again after it, and SIGTERM while wedged ends the daemon with 0
WEDGE_CHECKS = [
    "wedge: 'no frame for' logged as unavailable while vivid dropped every buffer (15 s)",
    "wedge: camera ok again after the wedge ended (log)",
    "wedge: summary with frames_processed > 0 and camera ok from a window begun after the wedge",
    "wedge: SIGTERM while wedged: the daemon exited 0",
]
wedged = re.search(r"MARK wedged at (\d+) s", con)
unwedged = re.search(r"MARK unwedged at (\d+) s", con)
wedge_refused = re.search(r"WEDGE NOT INJECTED: (.*)", con)
if wedged and unwedged:
    during = con[wedged.end():unwedged.start()]
    checks[WEDGE_CHECKS[0]] = "unavailable: no frame for" in during
    second = con.find("MARK wedged for the shutdown")
    checks[WEDGE_CHECKS[1]] = "camera ok:" in con[unwedged.end():second if second >= 0 else len(con)]
    after_ms = (int(unwedged.group(1)) + 1) * 1000
    after = [p for k, p in events if ok(k, p) and p.get("window_start_ms", 0) >= after_ms]
    print(f"info: {len(after)} summaries with frames from windows begun after the wedge (>= {after_ms} ms)")
    checks[WEDGE_CHECKS[2]] = bool(after)
    stop = re.search(r"daemon exit status (\d+) after (\d+) s", con)
    if stop:
        print(f"info: the daemon stopped {stop.group(2)} s after SIGTERM with the camera wedged")
    checks[WEDGE_CHECKS[3]] = second >= 0 and bool(stop) and stop.group(1) == "0"
elif wedge_refused:
    for name in WEDGE_CHECKS:
        not_run[name] = f"vivid did not accept percentage_of_dropped_buffers ({wedge_refused.group(1).strip()})"
else:
    checks["the guest reached the wedge"] = False
statuses = [p for k, p in events if k == "status"]
if statuses[:1] == ["offline"]:
    print("info: a retained status 'offline' (Last Will) arrived before the first 'online': "
          "a connection attempt was dropped after CONNECT (see mosquitto.log)")
bf = con.find("MARK inject buffer error flag")
if bf >= 0:
    seen = [p for k, p in events if k == "summary" and isinstance(p, dict)]
    print(f"info: frames_skipped over the whole run = {sum(p.get('frames_skipped', 0) for p in seen)} "
          "(vivid completed one buffer with V4L2_BUF_FLAG_ERROR)")
# `emotiond check --json` in the guest, before the daemon starts: the camera item decodes a
# frame from vivid, camera_modes lists what vivid offers (VIDIOC_ENUM_FMT/FRAMESIZES/INTERVALS)
items = {}
for line in con.splitlines():
    if line.startswith("VM-CHECK "):
        try:
            j = json.loads(line[len("VM-CHECK "):])
            items[j["check"]] = j
        except (ValueError, KeyError):
            pass
for name, j in items.items():
    print(f"check {name}: ok={j.get('ok')} {j.get('detail')}")
checks["check: camera ok (a frame decoded from vivid)"] = items.get("camera", {}).get("ok") is True
modes = items.get("camera_modes", {})
checks["check: camera_modes lists YUYV with sizes and rates"] = (
    modes.get("ok") is True and "YUYV" in modes.get("detail", "") and "@" in modes.get("detail", ""))
AUDIO_CHECKS = [
    "audio: summaries carry a voice block with the microphone ok and audio_s > 0 (snd-aloop capture)",
    "audio: speech heard from the loopback (speech_s > 0) in windows that got their audio",
    "check: microphone ok (audio read from the loopback)",
    "audio: overruns recovered in place (microphone ok in windows with lost_s > 0, audio after them)",
]
if "MARK audio feed started" in con:
    voiced = [p for k, p in events if k == "summary" and isinstance(p, dict) and isinstance(p.get("voice"), dict)]
    for v in [p["voice"] for p in voiced][:4]:
        print(f"info: voice block: microphone={v.get('microphone')} audio_s={v.get('audio_s')} "
              f"lost_s={v.get('lost_s')} speech_s={v.get('speech_s')} pitch_hz_median={v.get('pitch_hz_median')} vad={v.get('vad')}")
    real = lambda v: (v.get("audio_s") or 0) - (v.get("lost_s") or 0)  # captured, not overrun fill
    # a voice block is there with the microphone unavailable too: that is not audio from the loopback
    # (audio_s counts overrun fill too: that is only made by a capture stream that runs)
    live = [p for p in voiced if p["voice"].get("microphone") == "ok" and (p["voice"].get("audio_s") or 0) > 0]
    checks[AUDIO_CHECKS[0]] = bool(live)
    # an overrun (EPIPE) is recovered in place: the microphone stays ok and audio keeps coming
    first_xrun = next((i for i, p in enumerate(voiced) if (p["voice"].get("lost_s") or 0) > 0), None)
    if first_xrun is not None:
        xruns = [p for p in voiced if (p["voice"].get("lost_s") or 0) > 0]
        checks[AUDIO_CHECKS[3]] = (
            all(p["voice"].get("microphone") == "ok" for p in xruns)
            and any((p["voice"].get("audio_s") or 0) > 0 for p in voiced[first_xrun + 1:]))
    else:
        not_run[AUDIO_CHECKS[3]] = "no window with lost_s > 0 (no overrun happened in this run)"
    heard = any((p["voice"].get("speech_s") or 0) > 0 and p["voice"].get("microphone") == "ok" for p in voiced)
    # Under TCG the guest may not keep up with real time (the loopback then overruns and the
    # lost audio is filled with silence): speech must be heard in any window that got most of
    # its audio; windows that got less say nothing about the VAD.
    fed = [p for p in live if real(p["voice"]) >= 0.5 * 3.0]
    if heard or fed:
        checks[AUDIO_CHECKS[1]] = heard
    else:
        best = max(real(p["voice"]) for p in voiced) if voiced else 0
        not_run[AUDIO_CHECKS[1]] = (
            f"no window got half its audio (at most {best:.2f} s of 3 s captured, the rest overrun fill: "
            "the emulated guest does not keep up with real time)")
    checks[AUDIO_CHECKS[2]] = items.get("microphone", {}).get("ok") is True
elif audio_not_run:
    for name in AUDIO_CHECKS:
        not_run[name] = audio_not_run
else:
    checks["audio: the guest started the audio feed"] = False
print("-- checks --")
for name, good in checks.items():
    print(("PASS " if good else "FAIL ") + name)
for name, why in not_run.items():
    print(f"NOT RUN: {name}: {why}")
passed = sum(1 for good in checks.values() if good)
failed = len(checks) - passed
print(f"vivid.sh: {passed} checks passed, {failed} failed, {len(not_run)} not run")
sys.exit(0 if failed == 0 else 1)
PY
