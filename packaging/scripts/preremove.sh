#!/bin/sh
# Stop the agent before its binary goes (a change being verified is rolled
# back on SIGTERM). On upgrade the running agent is left alone.
set -e
case "$1" in
  upgrade|1) exit 0 ;;
esac
if [ -d /run/systemd/system ]; then
  systemctl stop sockwarden.service 2>/dev/null || true
  systemctl disable sockwarden.service 2>/dev/null || true
fi
exit 0
