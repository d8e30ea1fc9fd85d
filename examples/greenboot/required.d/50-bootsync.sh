#!/bin/bash
# greenboot required check: the boot is bad when the bootsync agent's own
# verification of it failed, or when no verdict came within the wait (the
# agent did not come up after an OS update). Boots that have nothing to verify
# (no update was applied, or it was already committed) pass at once.
#
# Installed by examples/bootc/Containerfile to
# /usr/lib/greenboot/check/required.d/50-bootsync.sh. See ../README.md.
#
# The wait must be longer than the agent needs to start, fetch and finish its
# health checks: its update.grace (default 5m) plus a few minutes. Change it
# with a drop-in for greenboot-healthcheck.service:
#   [Service]
#   Environment=BOOTSYNC_CHECK_BOOT_WAIT=20m
set -euo pipefail

wait="${BOOTSYNC_CHECK_BOOT_WAIT:-10m}"

# check-boot prints the verdict's reason on stdout (an error on stderr);
# greenboot puts both in its journal when the check fails.
exec /usr/bin/bootsync check-boot --wait "$wait"
