#!/bin/sh
# Create the state and run directories and tell systemd about the unit.
# Nothing is enabled or started: that is the operator's call
# (systemctl enable --now sockwarden).
set -e
if command -v systemd-tmpfiles >/dev/null 2>&1; then
  systemd-tmpfiles --create sockwarden.conf || true
fi
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload || true
fi
exit 0
