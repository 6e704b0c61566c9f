# Shared by the completion scripts of cellos-c (tools/completion/*.bash): `make
# install` puts this file in front of each, so that every installed script stays
# self-contained (bash-completion loads one file per command).

# _cellos_files CUR SUFFIX...: files ending in one of SUFFIX (any case) and
# directories; every file when none matches (a document need not be named .json).
_cellos_files()
{
    local cur=$1 f
    shift
    compopt -o filenames 2>/dev/null
    if declare -F _filedir >/dev/null 2>&1; then
        local IFS='|'
        _filedir "@($*)"
        ((${#COMPREPLY[@]})) || _filedir
        return
    fi
    local IFS=$'\n' s
    local -a all=() hit=()
    all=($(compgen -f -- "$cur"))
    for f in "${all[@]}"; do
        if [[ -d $f ]]; then
            hit+=("$f")
            continue
        fi
        for s in "$@"; do
            if [[ ${f,,} == *."${s,,}" ]]; then
                hit+=("$f")
                break
            fi
        done
    done
    local d=0
    for f in "${hit[@]}"; do [[ -d $f ]] || d=1; done
    if ((d)); then COMPREPLY+=("${hit[@]}"); else COMPREPLY+=("${all[@]}"); fi
}
