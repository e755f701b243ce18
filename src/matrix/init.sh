#!/bin/busybox sh
# twlab guest init (PID 1 in the initramfs twlab builds for `twlab matrix`).
# Mounts the host root read-only over 9p under an overlay with a tmpfs upper layer (so the
# guest can write anywhere without touching the host), mounts the results share, makes the
# kernel's module tree loadable, runs $twcmd in that root, and powers off.
# Kernel arguments: twcmd=SCRIPT twres=RESULTS_DIR twmodules=MODULE_TREE twmods=PRELOAD,...
/bin/busybox mkdir -p /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
say() { echo "[twlab-init $(cut -d' ' -f1 /proc/uptime)] $*"; }
fail() { say "FAILED: $*"; poweroff -f; }
say "kernel $(uname -r)"
modprobe -a virtio_pci 9pnet_virtio 9p overlay || say "modprobe of the 9p/overlay modules failed (built in?)"
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144,cache=none hostroot /lower || fail "9p mount of the host root"
mount -t tmpfs -o mode=0755 tmpfs /rw && mkdir -p /rw/upper /rw/work
mount -t overlay overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work /newroot || fail "overlay root"
R=/newroot
mount -t proc proc $R/proc
mount -t sysfs sys $R/sys
mount -t devtmpfs dev $R/dev
mkdir -p $R/dev/pts $R/dev/shm $R/run
mount -t devpts devpts $R/dev/pts
mount -t tmpfs tmpfs $R/dev/shm
mount -t tmpfs tmpfs $R/run
mkdir -p "$R$twres"
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144,cache=none results "$R$twres" || fail "9p mount of the results directory"
# The guest kernel's modules, at the place modprobe looks, in the guest root (for tools) and
# in the initramfs root: the kernel's request_module() helper runs /sbin/modprobe there,
# not in the chroot.
rel=$(uname -r)
mkdir -p $R/usr/lib/modules /lib/modules/$rel
rm -rf $R/usr/lib/modules/$rel
ln -s "$twmodules" $R/usr/lib/modules/$rel
mount --bind "$R$twmodules" /lib/modules/$rel || fail "bind mount of the module tree $twmodules"
# The host may have no kmod: busybox is the guest root's modprobe where none exists.
[ -e $R/usr/sbin/modprobe ] || [ -e $R/sbin/modprobe ] || ln -s /bin/busybox $R/usr/sbin/modprobe
if [ -n "$twmods" ]; then
  modprobe -a $(echo "$twmods" | tr , ' ') || say "preloading $twmods failed"
fi
say "running $twcmd"
chroot $R /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TERM=dumb /bin/sh "$twcmd"
say "command exit $?"
sync
poweroff -f
