#!/bin/bash
# SLURM ResumeProgram for provisiond: power on (boot into their deployed image) the nodes SLURM
# names, e.g. `resume.sh node[01-16,20]`. slurm.conf: ResumeProgram=/usr/local/sbin/provisiond-resume
# (this file). Settings (environment, or /etc/provisiond/slurm.env):
#   PROVISIOND_URL          the API, e.g. https://provisiond.example.org:8750
#   PROVISIOND_TOKEN_FILE   a file holding a scheduler-role token (default /etc/provisiond/slurm.token)
#   PROVISIOND_TIMEOUT      seconds for the HTTP call (default 30)
# Exit codes: 0 every node was started or already up; 1 some node is unknown or could not be
# acted on (see syslog); 2 usage or configuration error; 3 provisiond unreachable or refused.
# Logs to syslog (tag provisiond-slurm) and to stderr.
exec "$(dirname "$0")/provisiond-hook.sh" resume "$@"
