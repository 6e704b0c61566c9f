#!/bin/sh
# A real Firecracker boot of cellos cells, for a host with KVM. CI does not run
# this (CI hosts have no /dev/kvm and no Firecracker package): run it by hand on a
# KVM host, as root, from the repository, after `make`:
#
#   FIRECRACKER=/path/to/firecracker-v1.16.1 [JAILER=/path/to/jailer-v1.16.1] \
#       tests/kvm/firecracker_boot.sh
#
# It builds the guest image (cellctl image build, from the host's
# linux-image-cloud-amd64 and busybox-static), then runs cells with
# CELLOS_CELL_BACKEND=firecracker and checks what a user sees: exit statuses 0, 3
# and 42, stdout and stderr byte for byte, PID 1 is cellos-init, a timeout is
# 124 with no VMM left, the events (isolationMode microvm, the three digests,
# terminalState clean), and that nothing of the cells is left in the socket
# directory. With JAILER set, the same once more through the jailer.
set -eu
cd "$(dirname "$0")/../.."
: "${FIRECRACKER:?set FIRECRACKER to a firecracker binary (v1.16)}"
[ -c /dev/kvm ] || { echo "no /dev/kvm: this script needs a KVM host" >&2; exit 2; }
SUP=$PWD/build/cellos-supervisor
CELLCTL=$PWD/build/cellctl
WORK=$(mktemp -d /tmp/cellos-fc-boot-XXXXXX)
SOCK=/run/cellos/fc-boot-$$
trap 'rm -rf "$WORK" "$SOCK"' EXIT INT TERM
fail() { echo "FAIL: $*" >&2; exit 1; }

"$CELLCTL" image build --out "$WORK/image" >/dev/null
export CELLOS_CELL_BACKEND=firecracker CELLOS_VM_IMAGE_DIR="$WORK/image" \
	CELLOS_FIRECRACKER_BINARY="$FIRECRACKER" CELLOS_FIRECRACKER_SOCKET_DIR="$SOCK"

doc() { # doc ID TIMEOUT_MS ARGV_JSON
	printf '{"apiVersion":"cellos.io/v1","kind":"ExecutionCell","spec":{"id":"%s","authority":{"secretRefs":[]},"lifetime":{"ttlSeconds":60},"run":{"argv":%s,"timeoutMs":%s}}}\n' "$1" "$3" "$2" > "$WORK/$1.json"
	echo "$WORK/$1.json"
}

run_all() {
	label=$1
	for code in 0 3 42; do
		set +e
		CELL_OS_JSONL_EVENTS="$WORK/ev-$label-$code.jsonl" "$SUP" "$(doc "fc-$label-$code" 30000 "[\"/bin/sh\",\"-c\",\"printf out-$code; printf err-$code >&2; exit $code\"]")" \
			> "$WORK/out" 2> "$WORK/err"
		rc=$?
		set -e
		[ "$rc" = "$code" ] || fail "$label: exit $code gave $rc: $(cat "$WORK/err")"
		[ "$(cat "$WORK/out")" = "out-$code" ] || fail "$label: stdout $(cat "$WORK/out")"
		head -c 5 "$WORK/err" | grep -q "err-$code" || fail "$label: stderr $(cat "$WORK/err")"
		ev="$WORK/ev-$label-$code.jsonl"
		grep -q '"isolationMode":"microvm"' "$ev" || fail "$label: isolationMode"
		for k in kernelDigestSha256 rootfsDigestSha256 firecrackerDigestSha256; do
			grep -q "\"$k\":\"[0-9a-f]\{64\}\"" "$ev" || fail "$label: $k missing"
		done
		grep -q '"terminalState":"clean"' "$ev" || fail "$label: terminalState is not clean"
	done
	"$SUP" "$(doc "fc-$label-pid1" 30000 '["/bin/cat","/proc/1/comm"]')" > "$WORK/out" 2>/dev/null
	[ "$(cat "$WORK/out")" = "cellos-init" ] || fail "$label: PID 1 is $(cat "$WORK/out")"
	set +e
	"$SUP" "$(doc "fc-$label-timeout" 2000 '["/bin/sleep","60"]')" > /dev/null 2>&1
	rc=$?
	set -e
	[ "$rc" = 124 ] || fail "$label: timeout gave $rc"
	sleep 1
	if pgrep -f "$SOCK" > /dev/null; then fail "$label: a VMM outlived its cell"; fi
	[ -z "$(ls -A "$SOCK" 2>/dev/null)" ] || fail "$label: left in $SOCK: $(ls -A "$SOCK")"
	echo "ok: $label"
}

run_all plain
if [ -n "${JAILER:-}" ]; then
	CELLOS_FIRECRACKER_JAILER_BINARY="$JAILER" CELLOS_FIRECRACKER_CHROOT_BASE="$WORK/jail" run_all jailer
	[ -z "$(find "$WORK/jail" -mindepth 2 -maxdepth 2 2>/dev/null)" ] || fail "jailer: chroots left in $WORK/jail"
fi
echo "all Firecracker boots passed"
