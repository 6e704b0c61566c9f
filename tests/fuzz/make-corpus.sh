#!/bin/sh
# Regenerates the verifier's seed corpus (tests/fuzz/corpus/verify/) from real
# runs of the supervisor, signed with the fixed fuzzing keys that
# tests/fuzz/fuzz_verify.c knows; the spec and canon corpora are hand-written.
# Usage: tests/fuzz/make-corpus.sh [SUPERVISOR]   (default build/cellos-supervisor)
set -eu
cd "$(dirname "$0")/../.."
SUP=${1:-build/cellos-supervisor}
out=tests/fuzz/corpus/verify
work=$(mktemp -d /tmp/fuzz-corpus.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"
spec='{"apiVersion":"cellos.io/v1","kind":"ExecutionCell","spec":{"id":"fuzz-corpus",
 "authority":{"secretRefs":[],"egressRules":[{"host":"192.0.2.1","port":443}]},
 "lifetime":{"ttlSeconds":30},"run":{"argv":["/bin/sh","-c","exit 3"]}}}'
fail='{"apiVersion":"cellos.io/v1","kind":"ExecutionCell","spec":{"id":"fuzz-fail",
 "authority":{"secretRefs":["MISSING"]},"lifetime":{"ttlSeconds":30},"run":{"argv":["/bin/true"]}}}'
printf '%s' "$spec" > "$work/spec.json"
printf '%s' "$fail" > "$work/fail.json"
ed() {
	env -i PATH=/usr/bin:/bin CELLOS_EVENT_SIGNING=ed25519 CELLOS_EVENT_SIGNING_KID=fuzz-ed \
		CELLOS_EVENT_SIGNING_KEY_BASE64=Y2VsbG9zLWZ1enotY29ycHVzLXNlZWQtMzJieXRlcyE \
		CELLOS_REDACT_EVENT_FIELDS="$2" CELL_OS_JSONL_EVENTS="$3" "$SUP" "$1" >/dev/null 2>&1 || true
}
hm() {
	env -i PATH=/usr/bin:/bin CELLOS_EVENT_SIGNING=hmac CELLOS_EVENT_SIGNING_KID=fuzz-hmac \
		CELLOS_EVENT_SIGNING_KEY_BASE64=Y2VsbG9zLWZ1enotaG1hYy1rZXktMzItYnl0ZXMhIQA= \
		CELL_OS_JSONL_EVENTS="$2" "$SUP" "$1" >/dev/null 2>&1 || true
}
ed "$work/spec.json" "" "$work/a.jsonl"
ed "$work/spec.json" defaults "$work/b.jsonl"
ed "$work/fail.json" "" "$work/c.jsonl"
hm "$work/spec.json" "$work/d.jsonl"
cp "$work/a.jsonl" "$out/ed25519-run.jsonl"
cp "$work/d.jsonl" "$out/hmac-run.jsonl"
cp "$work/c.jsonl" "$out/failed-run.jsonl"
# Two runs interleaved line by line, and a few tampered logs.
paste -d '\n' "$work/a.jsonl" "$work/b.jsonl" | sed '/^$/d' > "$out/interleaved.jsonl"
sed '3d' "$work/a.jsonl" > "$out/dropped.jsonl"
sed '$d' "$work/a.jsonl" > "$out/no-end.jsonl"
sed 's/"exitCode":3/"exitCode":0/' "$work/a.jsonl" > "$out/altered.jsonl"
{ cat "$work/a.jsonl"; sed -n 2p "$work/a.jsonl"; } > "$out/duplicated.jsonl"
sed -n '1p;3p;2p;4,$p' "$work/a.jsonl" > "$out/reordered.jsonl"
cat "$work/a.jsonl" "$work/d.jsonl" > "$out/mixed-algorithms.jsonl"
sed -n 1p "$work/a.jsonl" | /usr/bin/python3 -c 'import json,sys; print(json.dumps(json.loads(sys.stdin.read())["data"]["event"]))' > "$out/unsigned.jsonl"
printf '{"fuzz-ed":"GL0TIuKLgTIBNGek17g7NZAJXBlrZVln87bQpmGt6ao"}\n{"other":"GL0TIuKLgTIBNGek17g7NZAJXBlrZVln87bQpmGt6ao="}\n' > "$out/keys.json"
chmod 644 "$out"/*
ls -l "$out"
