#!/bin/sh
# Runs as root inside the image's root file system (chroot for the offline recipe, RUN for the
# Dockerfile): the unprivileged user, the work directory, and no caches or setuid bits.
set -eu

groupadd --gid 1000 runner
useradd --uid 1000 --gid 1000 --create-home --home-dir /home/runner --shell /bin/bash runner
# /sandbox is replaced at run time by a size-capped tmpfs owned by uid 1000; the directory in
# the image only makes WORKDIR valid when someone runs the image by hand.
mkdir -p /sandbox
chown 1000:1000 /sandbox
chmod 0700 /sandbox

# Defence in depth on top of no-new-privileges and cap-drop ALL: no setuid/setgid program
# exists in the image at all.
find / -xdev -type f -perm /6000 -exec chmod ug-s {} +

rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/log/apt /var/log/dpkg.log \
    /usr/share/doc /usr/share/man /usr/share/locale /usr/share/info /tmp/* /var/tmp/*
