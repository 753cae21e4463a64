#!/bin/sh
# vshare-agent as a supervised service (Restart=always).
[ "$(/etc/vshare-arg agent)" = 0 ] && exec sleep 100000000
/usr/sbin/vshare-agent $(/etc/vshare-arg agentargs | tr , ' ') >>/run/agent.log 2>&1
echo "agent exited: $?" >>/run/agent.log
sleep 0.5
