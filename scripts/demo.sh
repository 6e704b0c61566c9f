#!/bin/sh
# One command from a fresh clone: install, build, run examples/hello.json, show events.
set -eu
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
make -s
events=$(mktemp /tmp/cellos-demo-events.XXXXXX)
trap 'rm -f "$events"' EXIT
echo "== running examples/hello.json (CELLOS_SUBPROCESS_UNSHARE=all)"
status=0
CELLOS_SUBPROCESS_UNSHARE=all CELL_OS_JSONL_EVENTS="$events" CELLOS_SECRET_DEMO_TOKEN=s3cr3t \
	./build/cellos-supervisor examples/hello.json || status=$?
echo "== exit status: $status"
echo "== CloudEvents ($events):"
if command -v /usr/bin/python3 >/dev/null; then
	/usr/bin/python3 -c 'import json,sys
for line in open(sys.argv[1]):
    print(json.dumps(json.loads(line), indent=2))' "$events"
else
	cat "$events"
fi
exit "$status"
