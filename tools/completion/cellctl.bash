# bash completion for cellctl(1)                                 -*- shell-script -*-
# Installed as share/bash-completion/completions/cellctl (make install).
# Commands and their flags are listed in _cellctl below: a new command is a new
# entry in `cmds` and a new case arm (and a subsection in docs/man/cellctl.1.scd).
# With common.bash in front (make install): self-contained, with or without the
# bash-completion package loaded.

_cellctl()
{
    local cur prev words cword
    COMPREPLY=()
    cur=${COMP_WORDS[COMP_CWORD]}
    prev=${COMP_WORDS[COMP_CWORD - 1]}
    cword=$COMP_CWORD
    words=("${COMP_WORDS[@]}")

    local cmds="validate verify show keygen submit watch queue image vm-config"
    if ((cword == 1)); then
        COMPREPLY=($(compgen -W "$cmds --help --version" -- "$cur"))
        return
    fi

    local cmd=${words[1]} flags=""
    case $cmd in
    validate)
        case $prev in
        --format)
            COMPREPLY=($(compgen -W "text json" -- "$cur"))
            return
            ;;
        esac
        flags="--format --help"
        ;;
    verify)
        case $prev in
        --keys)
            _cellos_files "$cur" json
            return
            ;;
        --hmac-key-env)
            COMPREPLY=($(compgen -e -- "$cur"))
            return
            ;;
        esac
        flags="--keys --hmac-key-env --help"
        ;;
    show)
        case $prev in
        --run) return ;;            # a run id: nothing to offer
        esac
        flags="--follow --run --help"
        ;;
    keygen)
        case $prev in
        --kid) return ;;            # a key id of your choosing
        esac
        flags="--kid --help"
        ;;
    submit)
        case $prev in
        --server | --pool | --job-id) return ;;   # a URL, a pool, a UUID
        esac
        flags="--pool --job-id --wait --no-validate --server --help"
        ;;
    watch)
        case $prev in
        --server | --job | --cell) return ;;
        esac
        flags="--job --cell --server --help"
        ;;
    queue)
        case $prev in
        --server | --replicas) return ;;
        esac
        flags="--server --replicas --help"
        if ((cword == 2)) && [[ $cur != -* ]]; then
            COMPREPLY=($(compgen -W "init" -- "$cur"))
            return
        fi
        ;;
    vm-config)
        flags="--help"
        ;;
    image)
        if ((cword == 2)); then
            COMPREPLY=($(compgen -W "build" -- "$cur"))
            return
        fi
        case $prev in
        --out | --rootfs)
            compopt -o dirnames 2>/dev/null
            COMPREPLY=($(compgen -d -- "$cur"))
            return
            ;;
        --kernel | --init | --busybox)
            _cellos_files "$cur" ""
            return
            ;;
        esac
        flags="--out --kernel --rootfs --init --busybox --help"
        ;;
    *)
        return
        ;;
    esac

    # Flags already given are not offered again; `-` (standard input) is a file.
    local w used=" "
    for w in "${words[@]:2:cword-2}"; do used+="$w "; done
    local f left=""
    for f in $flags; do [[ $used == *" $f "* ]] || left+="$f "; done
    if [[ $cur == -* && $cmd != keygen && $cmd != watch && $cmd != queue ]]; then
        COMPREPLY=($(compgen -W "$left -" -- "$cur"))
        return
    fi
    case $cmd in
    keygen | watch | queue | image) COMPREPLY=($(compgen -W "$left" -- "$cur")) ;;
    submit | validate | vm-config) _cellos_files "$cur" json ;;
    verify | show) _cellos_files "$cur" jsonl json log ;;
    esac
}
complete -F _cellctl cellctl
