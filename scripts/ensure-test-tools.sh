#!/usr/bin/env bash
# The system tools the tests use, checked before any test runs (`pnpm test` and `.ci/run` both call this):
# installed from Debian's packages when they are missing and this is root with apt-get; otherwise the
# command stops at once with one line naming them, rather than failing deep inside a suite.
set -euo pipefail

need=()
command -v openssl >/dev/null || need+=(openssl)
command -v curl >/dev/null || need+=(curl)
command -v ip >/dev/null || need+=(iproute2)
command -v iptables >/dev/null || need+=(iptables) # transparent-mode tests, in network namespaces
command -v nsenter >/dev/null || need+=(util-linux)
command -v dig >/dev/null || need+=(dnsutils) # the edge's DNS guard is tested with a real client
command -v chromium >/dev/null || need+=(chromium) # egress-guard report: the HTML page is rendered in a test
# egress-guard export: the exported configurations are checked and run by the engines themselves.
command -v nginx >/dev/null || need+=(nginx-light)
[ -e /usr/lib/nginx/modules/ngx_stream_module.so ] || need+=(libnginx-mod-stream) # stream + ssl_preread
command -v haproxy >/dev/null || need+=(haproxy)
squid -v 2>/dev/null | grep -q -- '--with-openssl' || need+=(squid-openssl) # peek/splice needs the TLS build
[ ${#need[@]} -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "egress-guard tests need: ${need[*]} (install them, e.g. as root: apt-get install ${need[*]})" >&2
  exit 1
fi
echo "installing test tools: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq "${need[@]}" >/dev/null
