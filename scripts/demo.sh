#!/bin/sh
# One command from a fresh clone: install, build, run examples/hello.json in a fully
# isolated cell with signed events, show the events and verify them with cellctl.
set -eu
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
make -s
work=$(mktemp -d /tmp/cellos-demo.XXXXXX)
trap 'rm -rf "$work"' EXIT
./build/cellctl keygen --kid demo > "$work/key.txt"
sed -n 2p "$work/key.txt" > "$work/keys.json"
echo "== running examples/hello.json (the default cell: every namespace incl. user, seccomp baseline, its own uid; signed events)"
status=0
CELLOS_EVENT_SIGNING=ed25519 CELLOS_EVENT_SIGNING_KID=demo \
	CELLOS_EVENT_SIGNING_KEY_BASE64="$(sed -n 1p "$work/key.txt")" \
	CELL_OS_JSONL_EVENTS="$work/events.jsonl" CELLOS_SECRET_DEMO_TOKEN=s3cr3t \
	./build/cellos-supervisor examples/hello.json || status=$?
echo "== exit status: $status"
echo "== CloudEvents (signed envelopes; the inner events):"
/usr/bin/python3 -c 'import json,sys
for line in open(sys.argv[1]):
    ev = json.loads(line)
    inner = ev["data"]["event"] if ev["type"].endswith("signed_envelope.v1") else ev
    print(json.dumps(inner, indent=2))' "$work/events.jsonl"
echo "== cellctl verify:"
./build/cellctl verify "$work/events.jsonl" --keys "$work/keys.json" && echo "all signatures and the digest chain verify"
exit "$status"
