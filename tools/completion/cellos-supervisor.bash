# bash completion for cellos-supervisor(1)                       -*- shell-script -*-
# Installed as share/bash-completion/completions/cellos-supervisor (make install).
# Self-contained: works with or without the bash-completion package loaded.

# _cellos_supervisor_files CUR SUFFIX...: files ending in one of SUFFIX (any case) and
# directories; every file when none matches (a document need not be named .json).
_cellos_supervisor_files()
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

_cellos_supervisor()
{
    local cur=${COMP_WORDS[COMP_CWORD]} w
    COMPREPLY=()
    # After --help or --version there is nothing more to say.
    for w in "${COMP_WORDS[@]:1:COMP_CWORD-1}"; do
        case $w in
        --help | -h | --version) return ;;
        esac
    done
    if [[ ${COMP_WORDS[COMP_CWORD - 1]} == --format ]]; then
        COMPREPLY=($(compgen -W "text json" -- "$cur"))
        return
    fi
    if [[ $cur == -* ]]; then
        local opts="--validate -"
        ((COMP_CWORD == 1)) && opts+=" --help --version"
        local given=" ${COMP_WORDS[*]:1:COMP_CWORD-1} "
        # --format goes with --validate, once.
        [[ $given == *" --validate "* ]] && opts=${opts/--validate/--format}
        [[ $given == *" --format "* ]] && opts=${opts/--format/}
        COMPREPLY=($(compgen -W "$opts" -- "$cur"))
        return
    fi
    _cellos_supervisor_files "$cur" json
}
complete -F _cellos_supervisor cellos-supervisor
