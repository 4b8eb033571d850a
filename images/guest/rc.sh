#!/bin/sh
# The router's boot: file systems, then what OpenWrt starts first — the
# syslog receiver (logd there, busybox syslogd here), the bus (ubusd there,
# pyprocd's bus here) and the service supervisor serving `service`.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs -o mode=0755 tmpfs /run
# what OpenWrt's boot creates (rc.common locks in /var/lock)
mkdir -p /var/log /var/run/ubus /run/lock /var/state  # /var/lock -> /run/lock
# prefork-interp keeps its sockets here when it is root's and private, else
# under root's home (flash on a router): one boot line keeps them in tmpfs.
mkdir -p -m 0700 /var/run/user/0
hostname qemu-router
echo "@@QT BOOT uptime=$(cut -d' ' -f1 /proc/uptime) kernel=$(uname -r) machine=$(uname -m)"

syslogd -n -O /var/log/messages &
pyprocd bus -s /var/run/ubus/ubus.sock &
i=0
while [ ! -S /var/run/ubus/ubus.sock ] || [ ! -S /dev/log ]; do
	i=$((i + 1))
	[ $i -gt 600 ] && { echo "@@QT FAIL boot/bus-and-syslog-up: no bus or /dev/log after 60 s"; break; }
	sleep 0.1
done
/qemu/daemon-start boot
