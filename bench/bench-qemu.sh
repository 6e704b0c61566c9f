#!/bin/sh
# microVM cell: boot -> run -> power-off of a no-op cell (/bin/true) with
# CELLOS_CELL_BACKEND=qemu (TCG on a host without /dev/kvm), timed end to end
# with hyperfine; then the supervisor's own steps (CELLOS_LOG=debug) and the
# phases inside the VM. Writes the figures into bench/README.md between the QEMU
# markers. Target (issue 12): median <= 1.5 s under TCG.
# Usage: bench/bench-qemu.sh [RUNS]   (default 20; needs root)
set -eu
cd "$(dirname "$0")/.."
RUNS=${1:-20}
./scripts/install-deps.sh
make -s B=build-bench all >/dev/null
SUP=$PWD/build-bench/cellos-supervisor
work=$(mktemp -d /tmp/cellos-bench-qemu.XXXXXX)
trap 'rm -rf "$work"' EXIT
./build-bench/cellctl image build --out "$work/image" >/dev/null
cat > "$work/noop.json" <<'JSON'
{"apiVersion":"cellos.io/v1","kind":"ExecutionCell","spec":{"id":"bench-qemu",
 "authority":{"secretRefs":[]},"lifetime":{"ttlSeconds":60},"run":{"argv":["/bin/true"]}}}
JSON
export CELL_OS_USE_NOOP_SINK=1 CELLOS_CELL_BACKEND=qemu CELLOS_VM_IMAGE_DIR="$work/image"
# The first cell hashes the image (the digests are cached from then on): not timed.
"$SUP" "$work/noop.json"
hyperfine -N --warmup 2 --runs "$RUNS" --export-json "$work/hf.json" \
	-n "cellos-supervisor, CELLOS_CELL_BACKEND=qemu (/bin/true)" "$SUP $work/noop.json" >/dev/null

i=0
: > "$work/steps.log"
while [ $i -lt 5 ]; do
	CELLOS_LOG=debug "$SUP" "$work/noop.json" 2>>"$work/steps.log"
	i=$((i + 1))
done

# The phases inside the VM: the same boot (same kernel, initramfs, options and
# devices as the backend's, bench-only verbose console), with host-side clock
# readings of the guest's console lines. The verbose console costs serial output,
# so these boots are a little slower than the timed ones.
/usr/bin/python3 - "$work" bench/README.md "$RUNS" <<'PY'
import base64, datetime, json, os, platform, re, secrets, statistics, subprocess, sys, time

work, readme, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
image = os.path.join(work, "image")

def cpio(entries):
    out = bytearray()
    def pad():
        out.extend(b"\0" * ((4 - len(out) % 4) % 4))
    for ino, (name, mode, data) in enumerate(entries + [("TRAILER!!!", 0, b"")], 1):
        nb = name.encode() + b"\0"
        out += b"070701" + b"".join(b"%08X" % v for v in (ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(nb), 0))
        out += nb; pad(); out += data; pad()
    return bytes(out)

job = {"version": 1, "runId": "bench", "key": base64.b64encode(secrets.token_bytes(32)).decode(),
       "argv": ["/bin/true"], "env": ["PATH=/bin"], "modules": ["virtio_mmio", "virtio_console"]}
initrd = os.path.join(work, "initrd")
with open(initrd, "wb") as f:
    f.write(open(os.path.join(image, "initramfs.cpio"), "rb").read())
    f.write(cpio([("cellos", 0o40700, b""), ("cellos/job.json", 0o100400, json.dumps(job).encode())]))
mhz = float(re.search(r"cpu MHz\s*:\s*([\d.]+)", open("/proc/cpuinfo").read()).group(1))
append = ("console=ttyS0 loglevel=7 panic=-1 reboot=t tsc=reliable no_timer_check cryptomgr.notests "
          "8250.nr_uarts=1 i8042.noaux i8042.nomux i8042.nopnp i8042.dumbkbd tsc_early_khz=%d" % int(mhz * 1000))
argv = ["qemu-system-x86_64", "-M", "microvm,x-option-roms=off,isa-serial=on,rtc=on", "-nodefaults",
        "-no-user-config", "-nographic", "-no-reboot", "-cpu", "max", "-accel", "tcg,tb-size=64", "-m", "256M",
        "-smp", "1", "-sandbox", "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny",
        "-kernel", os.path.join(image, "vmlinux"), "-initrd", initrd, "-append", append,
        "-chardev", "stdio,id=con,signal=off", "-serial", "chardev:con", "-device", "virtio-serial-device,max_ports=5"]
for i, name in enumerate(["cellos.exit", "cellos.stdout", "cellos.stderr", "cellos.artifacts"]):
    argv += ["-chardev", f"file,id=ch{i},path=/dev/null", "-device", f"virtserialport,chardev=ch{i},name={name}"]

TS = re.compile(rb"^\[\s*(\d+\.\d+)\]")
phases = {k: [] for k in ("vmm", "kernel", "init", "workload", "shutdown", "total")}
for _ in range(5):
    t0 = time.monotonic()
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    guest = {}
    for line in p.stdout:
        m = TS.match(line)
        if not m:
            continue
        t = float(m.group(1))
        for key, needle in (("init", b"cellos-init: starts"), ("wl0", b"workload starts"),
                            ("wl1", b"workload ended"), ("off", b"reboot: Power down")):
            if needle in line:
                guest[key] = t
    p.wait()
    total = time.monotonic() - t0
    if len(guest) < 4:
        sys.exit(f"bench: the replica boot did not show every milestone: {guest}")
    phases["vmm"].append(total - guest["off"])
    phases["kernel"].append(guest["init"])
    phases["init"].append(guest["wl0"] - guest["init"])
    phases["workload"].append(guest["wl1"] - guest["wl0"])
    phases["shutdown"].append(guest["off"] - guest["wl1"])
    phases["total"].append(total)

hf = json.load(open(os.path.join(work, "hf.json")))["results"][0]
steps = {}
for line in open(os.path.join(work, "steps.log")):
    m = re.search(r"step (\S+): ([\d.]+) ms", line)
    if m:
        steps.setdefault(m.group(1), []).append(float(m.group(2)))
med = lambda v: statistics.median(v)
qemu_version = subprocess.run(["qemu-system-x86_64", "--version"], capture_output=True, text=True).stdout.split("\n")[0]
load = open("/proc/loadavg").read().split()[0]
text = [f"Measured {datetime.date.today()} on {platform.node()} ({platform.release()}, {os.cpu_count()} cores, "
        f"load average {load} at the end), {qemu_version}, TCG, {runs} runs, median:", "",
        f"* no-op cell, end to end (hyperfine): **{hf['median']:.2f} s** (mean {hf['mean']:.2f} s, "
        f"min {hf['min']:.2f} s, max {hf['max']:.2f} s); target <= 1.5 s",
        "* supervisor steps (CELLOS_LOG=debug, 5 runs): " + ", ".join(
            f"{k} {med(v):.1f} ms" for k, v in steps.items() if k in ("admission", "create", "spawn", "run", "destroy")),
        "* inside the VM (5 replica boots with a verbose console, host clock for the total, guest clock for the rest): "
        + ", ".join(f"{k} {med(v):.2f} s" for k, v in phases.items()),
        "  (vmm: QEMU's start, loading the kernel, and its exit after the guest's power-off;",
        "  kernel: kernel start to /init; init: cellos-init's setup, modules included;",
        "  workload: /bin/true; shutdown: report and ACPI power-off)"]
doc = open(readme).read()
begin, end = "<!-- QEMU -->", "<!-- /QEMU -->"
block = begin + "\n" + "\n".join(text) + "\n" + end
doc = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda m: block, doc, flags=re.S) if begin in doc \
    else doc.rstrip("\n") + "\n\n## microVM cells (qemu)\n\n" + block + "\n"
open(readme, "w").write(doc)
print("\n".join(text))
PY
