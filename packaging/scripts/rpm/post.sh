#!/bin/sh
# RPM %post ($1: 1 install, 2 upgrade), as Fedora's %systemd_post without
# a preset: nothing is enabled or started (systemctl enable --now
# sockwarden is the operator's call).
systemd-tmpfiles --create sockwarden.conf >/dev/null 2>&1 || :
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload >/dev/null 2>&1 || :
fi
exit 0
