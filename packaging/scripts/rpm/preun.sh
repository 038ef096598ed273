#!/bin/sh
# RPM %preun ($1: 0 erase, 1 upgrade), as Fedora's %systemd_preun: stop
# and disable the agent on erase (a change being verified is rolled back
# on SIGTERM); on upgrade the agent keeps running until %postun.
if [ "$1" -eq 0 ] && [ -d /run/systemd/system ]; then
  systemctl --no-reload disable --now sockwarden.service >/dev/null 2>&1 || :
fi
exit 0
