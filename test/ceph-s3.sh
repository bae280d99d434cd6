#!/bin/bash
# A real S3 endpoint on loopback for the tests (test/ceph.ts) and bench/s3.ts: a one-node Ceph
# cluster (monitor, one in-memory OSD) with the RADOS Gateway in front. Needs Debian's ceph-mon,
# ceph-osd, radosgw and ceph-common packages.
#   ceph-s3.sh start DIR [PORT]   start it; prints endpoint and credentials as shell variables
#   ceph-s3.sh stop DIR           stop every daemon started from DIR
# Data lives in memory (memstore, 8 GiB cap): a stop loses it. Ports: PORT (default 17480) for S3,
# PORT+1 for the monitor.
set -eu
cmd=${1:?usage: ceph-s3.sh start|stop DIR [PORT]} D=${2:?usage: ceph-s3.sh start|stop DIR [PORT]}
port=${3:-17480} monport=$(( ${3:-17480} + 1 ))
stop() { for p in "$D"/run/*.pid; do [ -f "$p" ] && kill "$(cat "$p")" 2>/dev/null || true; done; }
if [ "$cmd" = stop ]; then stop; exit 0; fi
for b in ceph-mon ceph-osd radosgw radosgw-admin ceph-authtool monmaptool; do
  command -v $b >/dev/null || { echo "missing $b: apt-get install ceph-mon ceph-osd radosgw ceph-common" >&2; exit 2; }
done
stop; rm -rf "$D"; mkdir -p "$D"/mon "$D"/osd0 "$D"/run "$D"/log "$D"/rgw
fsid=$(cat /proc/sys/kernel/random/uuid)
cat > "$D"/ceph.conf <<CONF
[global]
fsid = $fsid
mon host = v2:127.0.0.1:$monport
client mount timeout = 30
rados mon op timeout = 30
auth allow insecure global id reclaim = true
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd crush chooseleaf type = 0
mon allow pool size one = true
mon warn on pool no redundancy = false
mon data avail warn = 1
run dir = $D/run
log file = $D/log/\$name.log
admin socket = $D/run/\$name.asok
pid file = $D/run/\$name.pid
ms bind ipv6 = false
osd objectstore = memstore
memstore device bytes = 8589934592
keyring = $D/keyring
[mon.a]
mon data = $D/mon
public addr = 127.0.0.1
[osd.0]
osd data = $D/osd0
[client.rgw]
rgw frontends = beast endpoint=127.0.0.1:$port
rgw data = $D/rgw
CONF
export CEPH_CONF="$D"/ceph.conf
ceph-authtool --create-keyring "$D"/keyring --gen-key -n mon. --cap mon 'allow *' >/dev/null
ceph-authtool "$D"/keyring --gen-key -n client.admin --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' >/dev/null
ceph-authtool "$D"/keyring --gen-key -n osd.0 --cap mon 'allow profile osd' --cap osd 'allow *' >/dev/null
ceph-authtool "$D"/keyring --gen-key -n client.rgw --cap mon 'allow rw' --cap osd 'allow rwx' >/dev/null
monmaptool --create --add a 127.0.0.1:$monport --fsid "$fsid" "$D"/monmap >/dev/null
ceph-mon --mkfs -i a --monmap "$D"/monmap --keyring "$D"/keyring 2>>"$D"/log/setup.log
ceph-mon -i a 2>>"$D"/log/setup.log
ceph osd create >/dev/null 2>>"$D"/log/setup.log
ceph-osd -i 0 --mkfs 2>>"$D"/log/setup.log
ceph-osd -i 0 2>>"$D"/log/setup.log
radosgw -n client.rgw 2>>"$D"/log/setup.log
key=bulwarktest secret=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
up=
for i in $(seq 90); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then up=1; break; fi; sleep 1
done
[ -n "$up" ] || { echo "radosgw did not start listening on $port; see $D/log" >&2; exit 3; }
for i in $(seq 30); do
  radosgw-admin user create --uid=test --display-name=test --access-key="$key" --secret="$secret" >/dev/null 2>>"$D"/log/setup.log && break
  sleep 1
done
echo "S3_ENDPOINT=http://127.0.0.1:$port"
echo "AWS_ACCESS_KEY_ID=$key"
echo "AWS_SECRET_ACCESS_KEY=$secret"
echo "AWS_REGION=us-east-1"
