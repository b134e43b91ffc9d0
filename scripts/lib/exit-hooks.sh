# Shared by the scripts' libraries: commands to run when the script exits, in the order
# they were registered, each whether or not the ones before it failed.
# shellcheck shell=bash

EXIT_HOOKS=()

# on_exit COMMAND: runs COMMAND (a function name) when the script exits.
on_exit() {
    EXIT_HOOKS+=("$1")
    trap run_exit_hooks EXIT
}

run_exit_hooks() {
    local hook
    for hook in "${EXIT_HOOKS[@]}"; do
        "$hook" || true
    done
}
