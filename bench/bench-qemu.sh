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
# TCG is pure CPU work: the host's load is part of every figure.
load0=$(cut -d' ' -f1 /proc/loadavg)
hyperfine -N --warmup 2 --runs "$RUNS" --export-json "$work/hf.json" \
	-n "cellos-supervisor, CELLOS_CELL_BACKEND=qemu (/bin/true)" "$SUP $work/noop.json" >/dev/null

i=0
: > "$work/steps.log"
while [ $i -lt 5 ]; do
	CELLOS_LOG=debug "$SUP" "$work/noop.json" 2>>"$work/steps.log"
	i=$((i + 1))
done

# The phases: the same boot (same kernel, initramfs, options and devices as the
# backend's: keep this list in step with src/backend/qemu.c), but with the
# kernel's notices on the console from its first instruction on (earlyprintk,
# loglevel=6: cellos-init's milestones are notices), timed by the host's clock
# as each line arrives. The guest's own timestamps are not used: under TCG its
# clock stands still in stretches of the early boot. The few console lines cost
# a little serial output, so these boots are a little slower than the timed ones.
/usr/bin/python3 - "$work" bench/README.md "$RUNS" "$load0" <<'PY'
import base64, datetime, json, os, platform, re, secrets, statistics, subprocess, sys, time

work, readme, runs, load0 = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
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
append = ("console=ttyS0 earlyprintk=ttyS0 loglevel=6 panic=-1 reboot=t tsc=reliable no_timer_check "
          "8250.nr_uarts=1 i8042.noaux i8042.nomux i8042.nopnp i8042.dumbkbd pci=off "
          "lsm=lockdown,capability,landlock,yama lockdown=confidentiality cryptomgr.notests "
          "initcall_blacklist=crypto_kdf108_init,trace_eval_init,ftrace_check_for_weak_functions clearcpuid=rep_good tsc_early_khz=%d" % int(mhz * 1000))
argv = ["qemu-system-x86_64", "-M", "microvm,x-option-roms=off,isa-serial=on,rtc=on", "-nodefaults",
        "-no-user-config", "-nographic", "-no-reboot", "-cpu", "max,erms=off", "-accel", "tcg,tb-size=64,thread=single",
        "-m", "256M",
        "-smp", "1", "-sandbox", "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny",
        "-kernel", os.path.join(image, "vmlinux"), "-initrd", initrd, "-append", append,
        "-chardev", "stdio,id=con,signal=off", "-serial", "chardev:con", "-device", "virtio-serial-device,max_ports=5"]
for i, name in enumerate(["cellos.exit", "cellos.stdout", "cellos.stderr", "cellos.artifacts"]):
    argv += ["-chardev", f"file,id=ch{i},path=/dev/null", "-device", f"virtserialport,chardev=ch{i},name={name}"]

phases = {k: [] for k in ("vmm start", "kernel", "init", "workload", "shutdown", "vmm exit", "total")}
for _ in range(5):
    t0 = time.monotonic()
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    at = {}
    for line in p.stdout:
        t = time.monotonic() - t0
        for key, needle in (("kernel", b"Linux version"), ("init", b"cellos-init: starts"),
                            ("wl0", b"workload starts"), ("wl1", b"workload ended"), ("off", b"reboot: Power down")):
            if needle in line and key not in at:
                at[key] = t
    p.wait()
    total = time.monotonic() - t0
    if len(at) < 5:
        sys.exit(f"bench: the replica boot did not show every milestone: {at}")
    phases["vmm start"].append(at["kernel"])
    phases["kernel"].append(at["init"] - at["kernel"])
    phases["init"].append(at["wl0"] - at["init"])
    phases["workload"].append(at["wl1"] - at["wl0"])
    phases["shutdown"].append(at["off"] - at["wl1"])
    phases["vmm exit"].append(total - at["off"])
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
text = [f"Measured {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC on {platform.node()} "
        f"({platform.release()}, {os.cpu_count()} cores, load average {load0} at the start, {load} at the end), "
        f"{qemu_version}, TCG, {runs} runs, median:", "",
        f"* no-op cell, end to end (hyperfine): **{hf['median']:.2f} s** (mean {hf['mean']:.2f} s, "
        f"min {hf['min']:.2f} s, max {hf['max']:.2f} s); target <= 1.5 s",
        "* supervisor steps (CELLOS_LOG=debug, 5 runs): " + ", ".join(
            f"{k} {med(v):.1f} ms" for k, v in steps.items() if k in ("admission", "create", "spawn", "run", "destroy")),
        "* phases (5 replica boots with the kernel's notices on the console, host clock): "
        + ", ".join(f"{k} {med(v):.2f} s" for k, v in phases.items()),
        "  (vmm start: QEMU's start, loading the kernel and initramfs, firmware, to the kernel's first line;",
        "  kernel: to cellos-init's start; init: its setup, modules and channels included;",
        "  workload: /bin/true; shutdown: report and ACPI power-off; vmm exit: QEMU's end after it)"]
doc = open(readme).read()
begin, end = "<!-- QEMU -->", "<!-- /QEMU -->"
block = begin + "\n" + "\n".join(text) + "\n" + end
doc = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda m: block, doc, flags=re.S) if begin in doc \
    else doc.rstrip("\n") + "\n\n## microVM cells (qemu)\n\n" + block + "\n"
open(readme, "w").write(doc)
print("\n".join(text))
PY
