#!/bin/sh
# The whole test suite: installs what it needs, builds with ASan/UBSan, runs the
# cmocka unit tests, the libFuzzer harnesses and the pytest black-box tests. Must
# run as root (namespaces, nftables, cgroups); every test runs, none may skip.
set -eu
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
make -s clean
make -s SANITIZE=1 all
make -s SANITIZE=1 unit
# libFuzzer harnesses (document parser, canonicaliser, verifier): about a minute
# in all on the repo's corpus; any finding fails the suite (tests/fuzz/README.md).
make -s fuzz
./tests/fuzz/run.sh
/usr/bin/python3 -m pytest -q -rs tests/blackbox "$@"
# Stress: 200 cells of every outcome (OOM, fork bomb, timeout, killed
# supervisor...), sequential and 4 at a time, then the host must be exactly as
# before (~15 s with the sanitizers).
/usr/bin/python3 tests/stress/stress.py --cells 200 --jobs 4
