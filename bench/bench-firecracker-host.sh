#!/bin/sh
# The host side of a Firecracker cell: what the supervisor itself spends on a
# no-op cell (admission with the KVM/binary check, create: the image verified,
# the Firecracker binary hashed, the per-boot initramfs, the listeners, the netns
# and the leaf; destroy), measured with the tests' stand-in VMM, since no
# Firecracker can run on a host without KVM (tests/blackbox/fc_standin_vmm.py).
# The guest's boot is not in it: bench/README.md has it on paper.
# Writes the figures into bench/README.md between the FIRECRACKER markers.
# Usage: bench/bench-firecracker-host.sh [RUNS]   (default 30; needs root)
set -eu
cd "$(dirname "$0")/.."
RUNS=${1:-30}
./scripts/install-deps.sh
make -s B=build-bench all >/dev/null
SUP=$PWD/build-bench/cellos-supervisor
work=$(mktemp -d /tmp/cellos-bench-fc.XXXXXX)
sock=/run/cellos/fc-bench-$$
trap 'rm -rf "$work" "$sock"' EXIT
chmod 755 "$work"
build-bench/cellctl image build --init build-bench/cellos-init --out "$work/image" >/dev/null
cat > "$work/vmm" <<PYEOF
#!/usr/bin/python3
import runpy, sys
sys.path.insert(0, "$PWD/tests/blackbox")
runpy.run_path("$PWD/tests/blackbox/fc_standin_vmm.py", run_name="__main__")
PYEOF
chmod 755 "$work/vmm"
cat > "$work/noop.json" <<'JSON'
{"apiVersion":"cellos.io/v1","kind":"ExecutionCell","spec":{"id":"bench-fc",
 "authority":{"secretRefs":[]},"lifetime":{"ttlSeconds":60},"run":{"argv":["/standin","exit=0"]}}}
JSON
export CELL_OS_USE_NOOP_SINK=1 CELLOS_CELL_BACKEND=firecracker CELLOS_VM_IMAGE_DIR="$work/image" \
	CELLOS_FIRECRACKER_BINARY="$work/vmm" CELLOS_FIRECRACKER_KVM_DEVICE=/dev/null CELLOS_FIRECRACKER_SOCKET_DIR="$sock"
# The first cell hashes the image (then cached by inode): not counted.
"$SUP" "$work/noop.json"
i=0
: > "$work/steps.log"
while [ $i -lt "$RUNS" ]; do
	CELLOS_LOG=debug "$SUP" "$work/noop.json" 2>>"$work/steps.log"
	i=$((i + 1))
done

/usr/bin/python3 - "$work/steps.log" bench/README.md "$RUNS" <<'PY'
import datetime, os, platform, re, statistics, sys
log, readme, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
steps = {}
for line in open(log):
    m = re.search(r"debug: step (\S+): ([0-9.]+) ms", line)
    if m:
        steps.setdefault(m.group(1), []).append(float(m.group(2)))
med = {k: statistics.median(v) for k, v in steps.items()}
load = os.getloadavg()[0]
block = (f"Measured {datetime.date.today()} on {platform.node()} ({platform.release()}, {os.cpu_count()} cores, "
         f"load average {load:.2f}), optimised build, stand-in VMM, {runs} runs, median per step (ms):\n\n"
         + ", ".join(f"{k} {med[k]:.1f}" for k in ("admission", "network_scope", "create", "spawn", "run",
                                                   "network_enforcement", "destroy") if k in med) + "\n\n"
         + "create split: " + ", ".join(f"{k[7:]} {v:.1f}" for k, v in med.items() if k.startswith("create.")) + "\n")
text = open(readme).read()
begin, end = "<!-- FIRECRACKER -->\n", "<!-- /FIRECRACKER -->\n"
if begin in text:
    text = text[:text.index(begin) + len(begin)] + block + text[text.index(end):]
else:
    text += "\n## Firecracker cells: the host side\n\n" + begin + block + end
open(readme, "w").write(text)
print(block)
PY
