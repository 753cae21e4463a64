#!/bin/sh
# vshare-agent as a supervised service (Restart=always). Extra arguments:
# vshare.agentargs= on the kernel command line, and /run/agent.args (tests
# write it, then kill the agent, to restart it with e.g. --test-fault).
[ "$(/etc/vshare-arg agent)" = 0 ] && exec sleep 100000000
extra=$(cat /run/agent.args 2>/dev/null)
/usr/sbin/vshare-agent $(/etc/vshare-arg agentargs | tr , ' ') $extra \
	>>/run/agent.log 2>&1
echo "agent exited: $?" >>/run/agent.log
sleep 0.5
