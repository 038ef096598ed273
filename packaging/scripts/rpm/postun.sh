#!/bin/sh
# RPM %postun ($1: 0 erase, 1 upgrade), as Fedora's
# %systemd_postun_with_restart: on upgrade a running agent is restarted on
# the new binary (a stopped one stays stopped). RPM has no purge: the
# change journal in /var/lib/sockwarden stays after an erase (remove it by
# hand, docs/packaging.md).
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload >/dev/null 2>&1 || :
  if [ "$1" -ge 1 ]; then
    if systemctl --quiet is-active sockwarden.service; then
      echo "sockwarden: upgraded: restarting the running agent (systemctl try-restart sockwarden)"
    fi
    systemctl try-restart sockwarden.service >/dev/null 2>&1 || :
  fi
fi
exit 0
