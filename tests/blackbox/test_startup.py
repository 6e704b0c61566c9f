"""The supervisor's start-up stays cheap: it is on the path of every cell."""
import subprocess

from conftest import SUPERVISOR


def test_supervisor_does_not_link_libcurl():
    # libcurl drags ~30 libraries into every start (~6 ms here); it is dlopen()ed
    # only when an HTTP/S3 export runs (src/export/curl_dl.h).
    out = subprocess.run(["ldd", str(SUPERVISOR)], capture_output=True, text=True, check=True).stdout
    assert "libcurl" not in out, out
    assert "libssl" not in out and "libkrb5" not in out, out
