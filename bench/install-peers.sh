#!/usr/bin/env bash
# Installs the edge benchmark's peers from Debian's packages when they are missing: nginx with the stream
# module (ssl_preread), HAProxy and sniproxy. Run as root (pnpm bench calls it; it does nothing when all
# are present). Services are never started by the install: bench/edge.mjs starts each peer itself, on
# 127.0.0.1 only, from the configuration files beside this script (bench/peers/), and stops it.
set -euo pipefail

need=()
command -v nginx >/dev/null 2>&1 || need+=(nginx)
[ -e /usr/lib/nginx/modules/ngx_stream_module.so ] || need+=(libnginx-mod-stream)
command -v haproxy >/dev/null 2>&1 || need+=(haproxy)
command -v sniproxy >/dev/null 2>&1 || need+=(sniproxy)
# The DNS guard's peers (bench/dns.mjs): dnsmasq and unbound as allowlisting forwarders.
command -v dnsmasq >/dev/null 2>&1 || need+=(dnsmasq-base)
command -v unbound >/dev/null 2>&1 || need+=(unbound)

if [ ${#need[@]} -eq 0 ]; then
  echo "peers: nginx (stream), haproxy, sniproxy, dnsmasq, unbound already installed"
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "peers: missing ${need[*]}; run bench/install-peers.sh as root (or apt-get install ${need[*]})" >&2
  exit 1
fi

echo "peers: installing ${need[*]} from Debian's packages"
# Keep the packages' init scripts from starting system-wide services (nginx on :80 etc.).
created_policy=0
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
  chmod +x /usr/sbin/policy-rc.d
  created_policy=1
fi
cleanup() { if [ "$created_policy" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi; }
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y --no-install-recommends "${need[@]}" >/tmp/egress-guard-bench-apt.log 2>&1; then
  apt-get update >>/tmp/egress-guard-bench-apt.log 2>&1
  apt-get install -y --no-install-recommends "${need[@]}" >>/tmp/egress-guard-bench-apt.log 2>&1 || {
    echo "peers: apt-get install failed, see /tmp/egress-guard-bench-apt.log" >&2
    exit 1
  }
fi
echo "peers: installed ($(nginx -v 2>&1 | sed 's/.*: //'), $(haproxy -v | head -1 | cut -d' ' -f1-3), sniproxy $(dpkg-query -W -f='${Version}' sniproxy))"
