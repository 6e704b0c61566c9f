# bash completion for cellos-agent(1)                             -*- shell-script -*-
# Installed as share/bash-completion/completions/cellos-agent (make install).
# The agent takes its configuration from the environment: only --help and --version.
_cellos_agent()
{
    local cur=${COMP_WORDS[COMP_CWORD]}
    COMPREPLY=()
    ((COMP_CWORD == 1)) && COMPREPLY=($(compgen -W "--help --version" -- "$cur"))
}
complete -F _cellos_agent cellos-agent
