"""Issue 14: what ships. `make install` / `make uninstall` (PREFIX, DESTDIR), the
man pages, bash completion, and the Debian package built from a clean clone.

The installed tree is made once per module (`make install DESTDIR=... PREFIX=/usr`)
and the .deb once per module (`dpkg-buildpackage -us -uc -b` in a `git clone` of
this repository's HEAD, without network). The .deb is only inspected, never
installed on the host. Every temporary directory is removed at the end.
"""
from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import REPO_ROOT, Result, make_spec, new_dir, prepare, supervisor_env

PROGRAMS = ("cellos-supervisor", "cellctl", "cellos-agent")
CELLCTL_COMMANDS = {"validate", "verify", "show", "keygen", "submit", "watch", "queue", "image", "vm-config"}
MAN_SECTIONS = ("NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "EXIT STATUS", "ENVIRONMENT", "FILES",
                "EXAMPLES", "SEE ALSO")
# Files Debian requires in every package, which `make install` has no business with.
DEBIAN_DOC_FILES = {"usr/share/doc/cellos/copyright", "usr/share/doc/cellos/changelog.gz"}


def make_env() -> dict:
    """The environment for make: no jobserver or SANITIZE from a make that runs pytest."""
    env = dict(os.environ)
    for k in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "SANITIZE"):
        env.pop(k, None)
    return env


def make(*args, cwd=REPO_ROOT, timeout=600) -> subprocess.CompletedProcess:
    p = subprocess.run(["make", "-s", "-j2", *args], cwd=cwd, env=make_env(), capture_output=True, text=True,
                       timeout=timeout)
    assert p.returncode == 0, f"make {' '.join(args)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}"
    return p


def example_files() -> list[str]:
    """Every file under examples/ that `make install` installs (no dotfile, no backup)."""
    root = REPO_ROOT / "examples"
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if p.is_file() and not p.name.startswith(".") and not p.name.endswith("~"))


def expected_files(prefix: str) -> set[str]:
    """The exact list `make install PREFIX=<prefix>` must install, relative to DESTDIR."""
    p = prefix.strip("/")
    files = {f"{p}/bin/{b}" for b in PROGRAMS}
    files |= {f"{p}/share/man/man1/{b}.1" for b in PROGRAMS}
    files |= {f"{p}/share/bash-completion/completions/{b}" for b in PROGRAMS}
    files |= {f"{p}/share/doc/cellos/examples/{e}" for e in example_files()}
    files |= {f"{p}/share/cellos/schema/{s}" for s in ("execution-cell.schema.json", "policy-pack.schema.json")}
    files.add(f"{p}/lib/cellos/cellos-init")  # the microVM guest's init, static
    files.add(f"{p}/lib/systemd/system/cellos-agent.service")
    return files


def tree(root: Path) -> tuple[set[str], set[str]]:
    """(files, directories) under root, relative; anything that is neither fails."""
    files, dirs = set(), set()
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            dirs.add(str((Path(dirpath) / d).relative_to(root)))
        for f in filenames:
            path = Path(dirpath) / f
            assert stat.S_ISREG(path.lstat().st_mode), f"{path} is not a regular file"
            files.add(str(path.relative_to(root)))
    return files, dirs


def needed(binary: Path) -> list[str]:
    p = subprocess.run(["readelf", "-d", str(binary)], capture_output=True, text=True, check=True)
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", p.stdout)


def is_sanitized(binary: Path) -> bool:
    return any("asan" in l or "ubsan" in l for l in needed(binary))


def assert_not_sanitized(binary: Path):
    assert not is_sanitized(binary), f"{binary} is a sanitizer build: {needed(binary)}"
    syms = subprocess.run(["nm", "-D", str(binary)], capture_output=True, text=True).stdout
    assert "__asan_init" not in syms and "__ubsan_handle" not in syms, f"{binary} carries sanitizer symbols"


def cellctl_commands(help_text: str) -> set[str]:
    """The commands the usage lines of `cellctl --help` name."""
    return set(re.findall(r"^(?:usage:)?\s+cellctl (\w[\w-]*)", help_text, re.M))


def version_of(supervisor: Path) -> str:
    out = subprocess.run([str(supervisor), "--version"], capture_output=True, text=True, check=True).stdout
    m = re.fullmatch(r"cellos-supervisor (\S+)\n", out)
    assert m, out
    return m.group(1)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def installed():
    """`make install DESTDIR=<tmp> PREFIX=/usr` of this tree; yields DESTDIR."""
    dest = Path(tempfile.mkdtemp(prefix="pkgtest-install-"))
    try:
        make("install", f"DESTDIR={dest}", "PREFIX=/usr")
        yield dest
    finally:
        shutil.rmtree(dest, ignore_errors=True)


@pytest.fixture(scope="module")
def deb():
    """The .deb that `dpkg-buildpackage -us -uc -b` makes from a clean clone of
    HEAD, built without network; yields (path of the .deb, build log)."""
    tmp = Path(tempfile.mkdtemp(prefix="pkgtest-deb-"))
    try:
        head = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
        src = tmp / "src"
        subprocess.run(["git", "clone", "-q", "--no-checkout", str(REPO_ROOT), str(src)], check=True, timeout=120)
        subprocess.run(["git", "-C", str(src), "checkout", "-q", head], check=True, timeout=120)
        env = make_env()
        env["DEB_BUILD_OPTIONS"] = "parallel=2"
        # A network namespace of its own with nothing in it: the build cannot reach
        # any network.
        p = subprocess.run(["unshare", "--net", "--", "dpkg-buildpackage", "-us", "-uc", "-b"], cwd=src, env=env,
                           capture_output=True, text=True, timeout=900)
        log = p.stdout + p.stderr
        assert p.returncode == 0, f"dpkg-buildpackage failed ({p.returncode}):\n{log[-6000:]}"
        debs = [d for d in tmp.glob("cellos_*.deb")]
        assert len(debs) == 1, f"expected one cellos_*.deb, got {sorted(tmp.iterdir())}"
        yield debs[0], log
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------- make install


def test_make_install_installs_exactly_the_file_list(installed):
    files, dirs = tree(installed)
    assert files == expected_files("/usr"), (
        f"missing: {sorted(expected_files('/usr') - files)}; unexpected: {sorted(files - expected_files('/usr'))}")
    for f in files:
        mode = stat.S_IMODE((installed / f).stat().st_mode)
        executable = f.startswith("usr/bin/") or f == "usr/lib/cellos/cellos-init"
        assert mode == (0o755 if executable else 0o644), f"{f}: mode {mode:o}"
    # The examples and the schema are the repository's, byte for byte.
    for e in example_files():
        assert (installed / "usr/share/doc/cellos/examples" / e).read_bytes() == (REPO_ROOT / "examples" / e).read_bytes()
    for schema in ("execution-cell.schema.json", "policy-pack.schema.json"):
        assert (installed / "usr/share/cellos/schema" / schema).read_bytes() == \
            (REPO_ROOT / "schema" / schema).read_bytes()


def test_installed_programs_are_the_optimised_build(installed):
    for b in PROGRAMS:
        assert_not_sanitized(installed / "usr/bin" / b)


def test_install_after_a_sanitizer_build_still_installs_the_optimised_build():
    """`make SANITIZE=1 all` then `make install` (even with SANITIZE=1 still given)
    must not install the ASan binaries. scripts/test.sh builds this tree with
    SANITIZE=1 before the tests run: then that build is the one to try; otherwise
    a sanitizer build is made in a scratch B."""
    tmp = Path(tempfile.mkdtemp(prefix="pkgtest-asan-"))
    try:
        b = REPO_ROOT / "build"
        if not (b / "cellctl").is_file() or not is_sanitized(b / "cellctl"):
            b = tmp / "build"
            make("SANITIZE=1", f"B={b}", f"{b}/cellctl")   # cellctl is enough to show the difference
        assert is_sanitized(b / "cellctl"), "the SANITIZE=1 build is not an ASan build"
        for extra in ([], ["SANITIZE=1"]):
            dest = tmp / f"dest{len(extra)}"
            make(*extra, f"B={b}", "install", f"DESTDIR={dest}", "PREFIX=/usr")
            for prog in PROGRAMS:
                assert_not_sanitized(dest / "usr/bin" / prog)
        # ... and B's own sanitizer build is left as it was.
        assert is_sanitized(b / "cellctl")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_installed_supervisor_validates_the_example(installed):
    sup = installed / "usr/bin/cellos-supervisor"
    hello = installed / "usr/share/doc/cellos/examples/hello.json"
    # --validate checks that the broker can see the example's secret.
    p = subprocess.run([str(sup), "--validate", str(hello)],
                       env=supervisor_env({"CELLOS_SECRET_DEMO_TOKEN": "s3cr3t"}, None), capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 0, p.stdout + p.stderr
    assert re.search(r"^cell:\s+hello-cell$", p.stdout, re.M), p.stdout


def test_installed_supervisor_runs_a_cell(installed, no_residue):
    sup = installed / "usr/bin/cellos-supervisor"
    d, spec_path, jsonl = prepare(make_spec(["/usr/bin/true"]))
    p = subprocess.run([str(sup), str(spec_path)], env=supervisor_env({}, jsonl), stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=60, cwd=d)
    r = Result(p.returncode, p.stdout, p.stderr, jsonl, spec_path, 0.0)
    assert r.rc == 0, r
    assert r.has("lifecycle.v1.started") and r.has("command.v1.completed"), r.types
    assert r.types[-1] == "lifecycle.v1.destroyed", r.types
    assert r.event("lifecycle.v1.destroyed")["data"]["outcome"] == "succeeded"


def test_installed_cellctl_works(installed):
    ctl = installed / "usr/bin/cellctl"
    p = subprocess.run([str(ctl), "--help"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0 and "usage: cellctl" in p.stdout, p.stdout + p.stderr
    hello = installed / "usr/share/doc/cellos/examples/hello.json"
    # validate checks that the broker can see the example's secret.
    p = subprocess.run([str(ctl), "validate", str(hello)],
                       env={"PATH": "/usr/bin:/bin", "CELLOS_SECRET_DEMO_TOKEN": "s3cr3t"}, capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 0 and "valid" in p.stdout, p.stdout + p.stderr


@pytest.mark.parametrize("prefix", ["/usr", None])
def test_make_uninstall_removes_everything_it_installed(prefix):
    dest = Path(tempfile.mkdtemp(prefix="pkgtest-uninstall-"))
    try:
        pre = [f"PREFIX={prefix}"] if prefix else []
        make("install", f"DESTDIR={dest}", *pre)
        files, _ = tree(dest)
        assert files == expected_files(prefix or "/usr/local")
        make("uninstall", f"DESTDIR={dest}", *pre)
        files, dirs = tree(dest)
        assert files == set(), f"left behind: {sorted(files)}"
        # Our own directories go; the shared ones (bin, man1, completions) may stay, empty.
        p = (prefix or "/usr/local").strip("/")
        for ours in (f"{p}/share/doc/cellos", f"{p}/share/cellos"):
            assert ours not in dirs, f"{ours} left behind"
    finally:
        shutil.rmtree(dest, ignore_errors=True)


# --------------------------------------------------------------------------- man pages


@pytest.mark.parametrize("prog", PROGRAMS)
def test_man_page_renders_without_warnings(installed, prog):
    page = installed / f"usr/share/man/man1/{prog}.1"
    p = subprocess.run(["man", "--warnings", "-l", str(page)], env={**os.environ, "MANWIDTH": "80", "MANPAGER": "cat",
                                                                   "PAGER": "cat"},
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and p.stderr == "", f"man --warnings: rc {p.returncode}\n{p.stderr}"
    text = p.stdout
    g = subprocess.run(["groff", "-ww", "-z", "-man", str(page)], capture_output=True, text=True, timeout=60)
    assert g.returncode == 0 and g.stderr == "", f"groff -ww: rc {g.returncode}\n{g.stderr}"
    for section in MAN_SECTIONS:
        assert re.search(rf"^{section}$", text, re.M), f"{prog}(1) has no {section} section"
    assert f"docs/reference.md" in text
    # The page is the one make built from docs/man/, and documents what --help lists.
    assert page.read_bytes() == (REPO_ROOT / "build" / "man" / f"{prog}.1").read_bytes()
    help_text = subprocess.run([str(installed / "usr/bin" / prog), "--help"], capture_output=True, text=True).stdout
    # One line, with the words that man hyphenated at the end of a line joined again.
    flat = re.sub(r"\s+", " ", re.sub(r"-\n\s*", "-", re.sub(r"\u2010\n\s*", "", text)))
    for flag in set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", help_text)):
        assert flag in flat, f"{prog} --help lists {flag}, {prog}(1) does not"
    if prog == "cellctl":
        for cmd in CELLCTL_COMMANDS | cellctl_commands(help_text):
            assert re.search(rf"^   {cmd}$", text, re.M), f"cellctl(1) has no subsection for '{cmd}'"


# --------------------------------------------------------------------------- completion


def complete(installed: Path, cwd: Path, words: list[str], with_bash_completion: bool) -> list[str]:
    """COMPREPLY for the command line `words` (the last word is the one completed),
    from the installed completion script sourced into a plain `bash -c`."""
    prog = words[0]
    script = installed / "usr/share/bash-completion/completions" / prog
    quoted = " ".join("'" + w.replace("'", "'\\''") + "'" for w in words)
    prelude = "source /usr/share/bash-completion/bash_completion\n" if with_bash_completion else ""
    code = prelude + f"""
source {script}
func=$(complete -p {prog} | sed -n 's/.*-F \\([^ ]*\\) .*/\\1/p')
[ -n "$func" ] || {{ echo "no completion function for {prog}" >&2; exit 3; }}
COMP_WORDS=({quoted})
COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 ))
COMP_LINE="${{COMP_WORDS[*]}}"
COMP_POINT=${{#COMP_LINE}}
"$func" {prog} "${{COMP_WORDS[COMP_CWORD]}}" "${{COMP_WORDS[COMP_CWORD-1]}}"
printf '%s\\n' "${{COMPREPLY[@]}}"
"""
    p = subprocess.run(["bash", "-c", code], cwd=cwd, capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    return sorted(l for l in p.stdout.split("\n") if l)


@pytest.fixture(scope="module")
def files_dir():
    d = new_dir("completion")
    for name in ("doc.json", "events.jsonl", "keys.json", "notes.txt"):
        (d / name).write_text("{}\n")
    (d / "sub").mkdir()
    return d


@pytest.mark.parametrize("with_bc", [False, True], ids=["plain-bash", "bash-completion"])
def test_cellctl_completion(installed, files_dir, with_bc):
    c = lambda *words: complete(installed, files_dir, ["cellctl", *words], with_bc)
    assert c("") == sorted(CELLCTL_COMMANDS | {"--help", "--version"})
    assert c("ve") == ["verify"]
    assert c("verify", "--") == ["--help", "--hmac-key-env", "--keys"]
    assert c("verify", "--keys", "k.json", "--") == ["--help", "--hmac-key-env"]
    assert c("verify", "--keys", "") == ["doc.json", "keys.json", "sub"]
    assert c("verify", "") == ["doc.json", "events.jsonl", "keys.json", "sub"]
    assert "PATH" in c("verify", "--hmac-key-env", "PA")
    assert c("show", "--") == ["--follow", "--help", "--run"]
    assert c("show", "--run", "") == []
    assert c("show", "ev") == ["events.jsonl"]
    assert c("keygen", "") == ["--help", "--kid"]
    assert c("keygen", "--kid", "") == []
    assert c("validate", "") == ["doc.json", "keys.json", "sub"]
    assert c("validate", "-") == sorted(["--format", "--help", "-"])
    assert c("validate", "--format", "") == ["json", "text"]
    assert c("validate", "--format", "json", "--") == ["--help"]
    # A document need not be called .json: with nothing else matching, any file.
    assert c("validate", "no") == ["notes.txt"]
    assert c("submit", "") == ["doc.json", "keys.json", "sub"]
    assert c("submit", "doc.json", "--w") == ["--wait"]
    assert c("submit", "--job-id", "") == []
    assert c("watch", "") == ["--cell", "--help", "--job", "--server"]
    assert c("queue", "") == ["init"]
    assert c("queue", "init", "--") == ["--help", "--replicas", "--server"]
    assert c("vm-config", "") == ["doc.json", "keys.json", "sub"]
    assert c("vm-config", "--") == ["--help"]


@pytest.mark.parametrize("with_bc", [False, True], ids=["plain-bash", "bash-completion"])
def test_supervisor_completion(installed, files_dir, with_bc):
    c = lambda *words: complete(installed, files_dir, ["cellos-supervisor", *words], with_bc)
    assert c("--") == ["--help", "--validate", "--version"]
    assert c("--validate", "--") == ["--format"]
    assert c("--validate", "-") == sorted(["--format", "-"])
    assert c("--validate", "--format", "") == ["json", "text"]
    assert c("--validate", "--format", "json", "--") == []
    assert c("") == ["doc.json", "keys.json", "sub"]
    assert c("--validate", "d") == ["doc.json"]
    assert c("--help", "") == []


def test_completion_knows_every_cellctl_command(installed, files_dir):
    """Every command `cellctl --help` lists is completed."""
    help_text = subprocess.run([str(installed / "usr/bin/cellctl"), "--help"], capture_output=True, text=True).stdout
    listed = cellctl_commands(help_text)
    assert {"validate", "verify", "keygen"} <= listed, help_text
    assert listed <= set(complete(installed, files_dir, ["cellctl", ""], False))


# --------------------------------------------------------------------------- the Debian package


def deb_files(path: Path) -> set[str]:
    p = subprocess.run(["dpkg-deb", "-c", str(path)], capture_output=True, text=True, check=True)
    files = set()
    for line in p.stdout.splitlines():
        perms, name = line.split()[0], line.split(None, 5)[5]
        if perms.startswith("d"):
            continue
        assert perms.startswith("-"), f"not a regular file in the .deb: {line}"
        files.add(name.removeprefix("./"))
    return files


def deb_field(path: Path, field: str) -> str:
    return subprocess.run(["dpkg-deb", "-f", str(path), field], capture_output=True, text=True,
                          check=True).stdout.strip()


def test_deb_installs_what_make_install_installs(deb, installed):
    path, _ = deb
    files = deb_files(path)
    made, _ = tree(installed)
    # dh_compress gzips the man pages; Debian adds the copyright and changelog.
    want = {f + ".gz" if f.startswith("usr/share/man/") else f for f in made} | DEBIAN_DOC_FILES
    assert files == want, f"missing from the .deb: {sorted(want - files)}; only in the .deb: {sorted(files - want)}"


def test_deb_control_fields(deb, installed):
    path, log = deb
    assert deb_field(path, "Package") == "cellos"
    arch = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True).stdout.strip()
    assert deb_field(path, "Architecture") == arch
    # The package's version is the programs' (0.5.1-c -> 0.5.1+c: a native version has no '-').
    assert deb_field(path, "Version") == version_of(installed / "usr/bin/cellos-supervisor").replace("-", "+")
    assert "libcurl4" in deb_field(path, "Recommends")
    assert "libnats3.4" in deb_field(path, "Recommends")  # dlopen()ed for CELLOS_NATS_URL
    suggests = deb_field(path, "Suggests")
    for s in ("runsc", "runc", "crun"):
        assert s in suggests
    assert "libnftnl" in deb_field(path, "Static-Built-Using")
    assert deb_field(path, "Description").startswith("sandbox runner")
    # The test suite did not run inside the package build (debian/rules overrides dh_auto_test).
    # (dh skips an empty override without a word; dh_auto_test would run `make check`.)
    assert "dh_auto_test" not in log
    assert not re.search(r"\bmake\b[^\n]*\b(check|unit|blackbox)\b|pytest|tests/blackbox", log), log[-3000:]


def test_deb_programs_run_and_depend_on_what_they_link(deb):
    path, _ = deb
    x = Path(tempfile.mkdtemp(prefix="pkgtest-x-"))
    try:
        subprocess.run(["dpkg-deb", "-x", str(path), str(x)], check=True)
        depends = deb_field(path, "Depends")
        dep_names = {re.split(r"[\s(]", d.strip())[0] for d in depends.split(",")}
        for prog in PROGRAMS:
            b = x / "usr/bin" / prog
            assert_not_sanitized(b)
            for soname in needed(b):
                owner = subprocess.run(["dpkg", "-S", f"*/{soname}"], capture_output=True, text=True).stdout
                pkgs = {l.split(":")[0] for l in owner.splitlines() if l}
                assert pkgs & dep_names, f"{prog} links {soname} (from {pkgs}) but Depends is: {depends}"
        p = subprocess.run([str(x / "usr/bin/cellctl"), "--help"], capture_output=True, text=True, timeout=30)
        assert p.returncode == 0 and "usage: cellctl" in p.stdout
        # --validate checks that the broker can see the example's secret.
        p = subprocess.run([str(x / "usr/bin/cellos-supervisor"), "--validate",
                            str(x / "usr/share/doc/cellos/examples/hello.json")],
                           env=supervisor_env({"CELLOS_SECRET_DEMO_TOKEN": "s3cr3t"}, None),
                           capture_output=True, text=True, timeout=30)
        assert p.returncode == 0, p.stdout + p.stderr
    finally:
        shutil.rmtree(x, ignore_errors=True)
