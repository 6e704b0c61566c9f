#!/bin/sh
# Installs the Debian packages cellos-c needs to build, test, benchmark and
# package (scdoc for the man pages; debhelper and dpkg-dev for the .deb;
# prometheus for promtool, which checks cellos-agent's metrics).
# The microVM backend's guest image (cellctl image build) is made of Debian's
# cloud kernel, installed here only for its files under /boot and /lib/modules
# (this machine does not boot it), a static busybox, mkfs.ext4 and lz4; the
# tests boot it with qemu-system-x86.
# Idempotent: does nothing (and needs no network) when all are present.
set -eu
PKGS="build-essential pkg-config libjansson-dev libsodium-dev nftables
libnftnl-dev libmnl-dev libldns-dev libseccomp-dev libcurl4-openssl-dev libnats-dev nats-server libcmocka-dev python3-pytest hyperfine bubblewrap iproute2 util-linux procps
python3-nacl python3-jsonschema python3-yaml clang libclang-rt-14-dev python3-dnspython openssl curl bc
prometheus
runsc crun runc dnsmasq-base
qemu-system-x86 linux-image-cloud-amd64 busybox-static e2fsprogs lz4
scdoc groff-base man-db bash-completion debhelper dpkg-dev git"
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "installing:$missing"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
