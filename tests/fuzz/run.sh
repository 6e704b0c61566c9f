#!/bin/sh
# Runs each libFuzzer harness (built by `make fuzz`) on its corpus for
# FUZZ_SECONDS/4 seconds (default 60 s in total) and fails on any finding: a
# crash, a leak, a sanitizer report, a slow input (10 s) or running out of memory.
# New inputs go to a temporary directory; the repo's corpus is only read.
set -eu
cd "$(dirname "$0")/../.."
FB=${FUZZ_BUILD:-build/fuzz}
per=$(( ${FUZZ_SECONDS:-60} / 4 ))
[ "$per" -ge 1 ] || per=1
work=$(mktemp -d /tmp/fuzz-run.XXXXXX)
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
status=0
for h in spec canon verify l7peek; do
	bin=$FB/fuzz_$h
	if [ ! -x "$bin" ]; then
		echo "fuzz_$h: $bin is missing (run make fuzz)" >&2
		exit 1
	fi
	mkdir -p "$work/$h/new" "$work/$h/artifacts"
	if "$bin" -max_total_time="$per" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
		-artifact_prefix="$work/$h/artifacts/" "$work/$h/new" "tests/fuzz/corpus/$h" >"$work/$h.log" 2>&1; then
		runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$h.log")
		cov=$(sed -n 's/.*DONE *cov: *\([0-9]*\).*/\1/p' "$work/$h.log" | tail -1)
		echo "fuzz_$h: ${per}s, ${runs:-?} inputs, coverage ${cov:-?}: no finding"
	else
		tail -n 60 "$work/$h.log" >&2
		echo "fuzz_$h: FINDING; log and input kept in $work/$h.log, $work/$h/artifacts/" >&2
		status=1
	fi
done
[ "$status" -ne 0 ] || rm -rf "$work"
exit "$status"
