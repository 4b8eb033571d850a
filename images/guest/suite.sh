#!/bin/sh
# Every file in /qemu/scenarios, in name order, then power off. Each prints
# its own @@QT PASS/FAIL lines; a scenario that dies or hangs is a failure.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
export PYTHONPATH=/qemu
export HOME=/root
cd /qemu
for scenario in /qemu/scenarios/*; do
	name=$(basename "$scenario")
	echo "@@QT SCENARIO $name"
	timeout 900 "$scenario" </dev/null
	echo "@@QT SCENARIO-END $name rc=$?"
done
# The daemon's own log lines, for reading a failure from the console log.
grep -i "pyprocd" /var/log/messages | tail -80 | sed 's/^/syslog: /'
echo "@@QT FIGURE uptime-at-end $(cut -d' ' -f1 /proc/uptime) s"
echo "@@QT DONE"
sync
poweroff -f
