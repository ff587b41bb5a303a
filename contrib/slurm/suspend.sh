#!/bin/bash
# SLURM SuspendProgram for provisiond: power off the nodes SLURM names. Same settings and exit
# codes as resume.sh.
exec "$(dirname "$0")/provisiond-hook.sh" suspend "$@"
