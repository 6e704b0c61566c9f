"""docs/reference.md cannot go stale (issue 14): it names every environment variable
the code reads and every field the document validator knows, and names no variable
the code never reads except in its "Not in this build" list; the README links to it,
and nothing a user reads points at a contract file that is not in the repository.

Which variables the code reads is found by scanning src/, tools/ and agent/ (comments left
out) for
* getenv("X"), secure_getenv("X") and config.c's env("X") / config_named_env("X");
* load_target_urls("X", …): the family X__<TARGET>;
* a string literal that is a variable-name prefix ("CELLOS_SECRET_",
  "CELLOS_SECRET_FILE_%s"): the family of names built from it at run time.
A variable-name family is written NAME_<KEY> in the docs and compared by its
prefix."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

from conftest import REPO_ROOT, SUPERVISOR

REFERENCE = REPO_ROOT / "docs" / "reference.md"
README = REPO_ROOT / "README.md"
SPEC_KEYS_C = REPO_ROOT / "src" / "spec" / "spec_keys.c"
CELLCTL = SUPERVISOR.parent / "cellctl"

NAME = r"(?:CELLOS|CELL_OS)_[A-Z0-9_]*"
# A C string literal, a character literal, or a comment (the last two are dropped).
C_TOKENS = re.compile(r'"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\'|/\*.*?\*/|//[^\n]*', re.S)


def c_sources() -> list[Path]:
    return sorted(p for d in ("src", "tools", "agent") for p in (REPO_ROOT / d).rglob("*.[ch]"))


def without_comments(text: str) -> str:
    return C_TOKENS.sub(lambda m: m.group(0) if m.group(0)[0] in "\"'" else " ", text)


def string_literals(text: str) -> list[str]:
    return [m.group(0)[1:-1] for m in C_TOKENS.finditer(text) if m.group(0).startswith('"')]


def code_reads() -> tuple[set[str], set[str]]:
    """(exact names, family prefixes) of the variables the code reads."""
    names, families = set(), set()
    for path in c_sources():
        code = without_comments(path.read_text())
        names |= set(re.findall(r'\b(?:secure_getenv|getenv|env|config_named_env)\(\s*"([A-Z_][A-Z0-9_]*)"\s*\)',
                                code))
        families |= {p + "__" for p in re.findall(r'\bload_target_urls\(\s*"(' + NAME + ')"', code)}
        for lit in string_literals(code):
            m = re.fullmatch("(" + NAME + "_)(?:%s)?", lit)
            if m:
                families.add(m.group(1))
    return names, families


def code_mentions() -> tuple[set[str], set[str]]:
    """(names, family prefixes) of every variable named in a string of the code: a
    user may meet each in a message or in the workload's environment."""
    names, families = set(), set()
    for path in c_sources():
        code = without_comments(path.read_text())
        bases = set(re.findall(r'\bload_target_urls\(\s*"(' + NAME + ')"', code))
        for lit in string_literals(code):
            for n in re.findall(NAME, lit):
                if n in ("CELLOS_", "CELL_OS_"):  # "CELLOS_*" in a help text
                    continue
                if n in bases:  # the base of the family n__<TARGET>
                    families.add(n + "__")
                else:
                    (families if n.endswith("_") else names).add(n)
    return names, families


def doc_names(text: str, pattern: str = NAME) -> tuple[set[str], set[str]]:
    """(names, family prefixes) written in backquotes: `NAME`, `NAME_<KEY>`, `NAME__<TARGET>`."""
    names, families = set(), set()
    for n, family in re.findall(r"`(" + pattern + r")(<[A-Z]+>)?`", text):
        (families if family else names).add(n)
    return names, families


def section(text: str, start: str, end: str | None) -> str:
    """The text from the heading line `start` up to the heading line `end`."""
    i = text.index("\n" + start + "\n")
    j = text.index("\n" + end + "\n", i) if end else len(text)
    return text[i:j]


def table_first_cells(text: str) -> str:
    return "\n".join(l.split("|")[1] for l in text.splitlines() if l.startswith("| `"))


REF = REFERENCE.read_text()
READ_SECTION = section(REF, "## Environment variables", "### Not in this build")
NOT_BUILT_SECTION = section(REF, "### Not in this build", None)
# In the tables, any upper-case name counts (PATH is read too).
DOCUMENTED = doc_names(table_first_cells(READ_SECTION), r"[A-Z][A-Z0-9_]*")
NOT_BUILT = doc_names(table_first_cells(NOT_BUILT_SECTION), r"[A-Z][A-Z0-9_]*")


def is_read(name: str, reads) -> bool:
    names, families = reads
    return name in names or any(name.startswith(f) and name != f for f in families)


def test_every_variable_the_code_reads_has_a_row_in_the_reference():
    names, families = code_reads()
    assert "CELLOS_CELL_BACKEND" in names and "CELLOS_SECRET_" in families, "the scan found nothing: fix the scan"
    doc_n, doc_f = DOCUMENTED
    missing = sorted(names - doc_n) + sorted(f + "<…>" for f in families - doc_f)
    assert not missing, (f"read by the code but without a row in {REFERENCE.relative_to(REPO_ROOT)} "
                         f"('## Environment variables'): {missing}")


def test_every_variable_in_the_reference_tables_is_read_by_the_code():
    reads = code_reads()
    doc_n, doc_f = DOCUMENTED
    stale = sorted(n for n in doc_n if not is_read(n, reads)) + sorted(f + "<…>" for f in doc_f - reads[1])
    assert not stale, (f"documented as read, but the code never reads: {stale} "
                       "(move them to 'Not in this build', or remove them)")


def test_not_in_this_build_lists_only_variables_the_code_does_not_read():
    reads = code_reads()
    names, families = NOT_BUILT
    assert not families
    # Every feature of the contract is built now: the section must say so, not
    # be an empty table a later row could be lost from.
    assert names or "reads every variable the product contract names" in NOT_BUILT_SECTION
    now_read = sorted(n for n in names if is_read(n, reads))
    assert not now_read, (f"listed under 'Not in this build' but read by the code now: {now_read}: "
                          "give each a row in its section of '## Environment variables'")
    assert not names & DOCUMENTED[0], "a variable is both documented as read and as not in this build"


def test_every_variable_named_by_the_code_or_the_reference_is_accounted_for():
    # Names in messages and in the workload's environment must be documented; and
    # a name anywhere on the page (prose included) must be one the code knows or
    # one listed as not in this build, so a typo cannot hide in a sentence.
    mentioned_n, mentioned_f = code_mentions()
    all_n, all_f = doc_names(REF)
    undocumented = sorted(n for n in mentioned_n if n not in all_n and not any(n.startswith(f) for f in all_f))
    undocumented += sorted(f + "<…>" for f in mentioned_f - all_f)
    assert not undocumented, f"named in a string of the code but nowhere in the reference: {undocumented}"
    reads = code_reads()
    unknown = sorted(n for n in all_n if not is_read(n, reads) and n not in mentioned_n and n not in NOT_BUILT[0])
    unknown += sorted(f + "<…>" for f in all_f - reads[1] - mentioned_f)
    assert not unknown, f"the reference names variables the code does not know: {unknown}"


def known_keys() -> dict[str, list[str]]:
    """The document validator's table of known keys (src/spec/spec_keys.c): place -> keys."""
    text = SPEC_KEYS_C.read_text()
    lists = {name: re.findall(r'"([^"]+)"', body)
             for name, body in re.findall(r"^const char \*const (spec_known_\w+)\[\] = \{(.*?)\};", text, re.S | re.M)}
    table = text[text.index("key_places[] = {"):]
    table = table[:table.index("};")]
    places = {path: lists[var] for path, var in re.findall(r'\{"([^"]*)", (spec_known_\w+)\}', table)}
    assert len(places) >= 14 and places["spec.run"], places
    return places


def field_rows() -> dict[str, str]:
    fields = section(REF, "### Fields", "### The workload's environment")
    rows = {}
    for line in fields.splitlines():
        m = re.match(r"\| `([A-Za-z.\[\]]+)`", line)
        if m:
            rows[m.group(1)] = line
    return rows


def test_every_field_the_validator_knows_has_a_row_in_the_reference():
    rows = field_rows()
    missing = [f"{place}.{key}" if place else key
               for place, keys in known_keys().items() for key in keys
               if (f"{place}.{key}" if place else key) not in rows]
    assert not missing, f"fields of src/spec/spec_keys.c without a row in the reference's '### Fields': {missing}"


def test_every_field_row_names_a_field_the_validator_knows():
    places = known_keys()
    known = {f"{p}.{k}" if p else k for p, keys in places.items() for k in keys}
    rows = field_rows()
    for field, line in rows.items():
        if "Not in this build yet" in line:
            # Documented ahead of the code: it must still be unknown to the validator.
            assert field not in known, f"{field} is known to src/spec/spec_keys.c now: drop 'Not in this build yet'"
        else:
            assert field in known, f"the reference has a row for {field}, which src/spec/spec_keys.c does not know"


def test_readme_links_to_the_reference_and_no_outside_contract():
    text = README.read_text()
    assert "](docs/reference.md)" in text, "the README must link to docs/reference.md"
    assert "SPEC.md" not in text and "SPEC §" not in text, "the README points at a contract outside the repository"
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text):
        if "://" not in target:
            assert (REPO_ROOT / target).exists(), f"README links to a missing file: {target}"


def test_help_texts_point_at_the_reference_not_an_outside_contract():
    out = subprocess.run([str(SUPERVISOR), "--help"], capture_output=True, text=True, env={}).stdout
    assert "docs/reference.md" in out and "SPEC.md" not in out, out
    p = subprocess.run([str(CELLCTL), "--help"], capture_output=True, text=True, env={})
    assert "SPEC.md" not in p.stdout + p.stderr, p.stdout


def test_reference_links_resolve():
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", REF):
        if "://" not in target:
            assert (REFERENCE.parent / target).exists(), f"docs/reference.md links to a missing file: {target}"
    anchors = {re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-")
               for h in re.findall(r"^#+ (.+)$", REF, re.M)}
    for anchor in re.findall(r"\]\(#([^)]+)\)", REF):
        assert anchor in anchors, f"docs/reference.md links to a missing section #{anchor}"
