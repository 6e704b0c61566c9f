#!/bin/sh
# The whole test suite: installs what it needs, builds with ASan/UBSan, runs the
# cmocka unit tests and the pytest black-box tests. Must run as root (namespaces,
# nftables, cgroups); every test runs, none may skip.
set -eu
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
make -s clean
make -s SANITIZE=1 all
make -s SANITIZE=1 unit
/usr/bin/python3 -m pytest -q -rs tests/blackbox "$@"
