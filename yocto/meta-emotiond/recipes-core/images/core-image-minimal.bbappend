# Example: emotiond in oe-core's core-image-minimal (`bitbake core-image-minimal`, yocto/README.md).
# A product image would list these in its own image recipe instead of this append.
#
# emotiond needs systemd as init manager (INIT_MANAGER = "systemd" in local.conf or the distro).
# alsa-utils (arecord, aplay, alsamixer) and v4l-utils (v4l2-ctl, from meta-oe when that layer is
# present) are there to diagnose a camera or microphone on site; emotiond does not need them.
IMAGE_INSTALL:append = " emotiond alsa-utils"
IMAGE_INSTALL:append = "${@bb.utils.contains('BBFILE_COLLECTIONS', 'openembedded-layer', ' v4l-utils', '', d)}"
