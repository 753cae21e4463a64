#!/bin/sh
# vshare-agent as a supervised service (Restart=always). Extra arguments:
# vshare.agentargs= on the kernel command line, and /run/agent.args (tests
# write it, then kill the agent, to restart it with e.g. --test-fault).
[ "$(/etc/vshare-arg agent)" = 0 ] && exec sleep 100000000
extra=$(cat /run/agent.args 2>/dev/null)
# Nice -10, as the packaged unit: the agent acts for the host, briefly, and
# must not queue behind the guest's CPU hogs (measured: a loaded guest's
# take-away 300-620 ms at nice 0, 85-180 ms at -10). qemu-ga gets the same.
renice -n -10 -p $$ >/dev/null
/usr/sbin/vshare-agent $(/etc/vshare-arg agentargs | tr , ' ') $extra \
	>>/run/agent.log 2>&1
echo "agent exited: $?" >>/run/agent.log
sleep 0.5
