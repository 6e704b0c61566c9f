# bash completion for cellos-supervisor(1)                       -*- shell-script -*-
# Installed as share/bash-completion/completions/cellos-supervisor (make install).
# With common.bash in front (make install): self-contained, with or without the
# bash-completion package loaded.

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
    _cellos_files "$cur" json
}
complete -F _cellos_supervisor cellos-supervisor
