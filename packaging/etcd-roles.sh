#!/bin/sh
# etcd-roles.sh: the etcdctl equivalent of `sockwarden fleet setup-roles`.
# Creates the role sockwarden-operator (reads everything under PREFIX,
# writes rollouts, the halt and approvals) and, for each HOST, the role
# sockwarden-agent-HOST (reads everything, writes only keys named after
# HOST), each with a user of the same name (etcdctl asks for passwords).
#
#   ETCDCTL_ENDPOINTS=https://etcd1:2379 ETCDCTL_USER=root sh etcd-roles.sh /sockwarden/ web-1 web-2 ...
#
# Enable authentication afterwards (once root exists): etcdctl auth enable.
set -eu
prefix=${1:?usage: etcd-roles.sh PREFIX HOST...}
shift
ctl() { etcdctl "$@"; }

ctl role add sockwarden-operator || true
ctl role grant-permission --prefix=true sockwarden-operator read "$prefix"
ctl role grant-permission --prefix=true sockwarden-operator readwrite "${prefix}rollouts/"
ctl role grant-permission sockwarden-operator readwrite "${prefix}halt"
ctl role grant-permission --prefix=true sockwarden-operator readwrite "${prefix}approvals/"
ctl user add sockwarden-operator || true
ctl user grant-role sockwarden-operator sockwarden-operator

for host in "$@"; do
	r="sockwarden-agent-$host"
	ctl role add "$r" || true
	ctl role grant-permission --prefix=true "$r" read "$prefix"
	for sub in hosts proposals rollout progress; do
		ctl role grant-permission --prefix=true "$r" readwrite "${prefix}${sub}/${host}/"
	done
	ctl user add "$r" || true
	ctl user grant-role "$r" "$r"
done
