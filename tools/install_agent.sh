#!/usr/bin/env bash
# Install the hilnas device agent as a systemd service on a Linux board (Raspberry Pi OS,
# Debian, Ubuntu, PYNQ's Linux). Run as root on the board:
#
#   sudo tools/install_agent.sh [--source PATH_OR_SPEC] [--host 0.0.0.0] [--port 50051]
#                               [--backend litert] [--power-sensor ina219] [--name pi4-bench]
#
# It creates a virtual environment with `hilnas[agent]` (no TensorFlow), a system user,
# a random bearer token in /etc/hilnas-agent/token (copy it to the host), and the unit
# hilnas-agent.service, then enables and starts it. `--root DIR` stages every file under DIR
# instead and touches nothing on the system (for packaging and for tests).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source_spec="$(cd "$here/.." && pwd)"   # install from this checkout by default
host="0.0.0.0"; port=50051; backend="litert"; sensor="none"; name="$(hostname)"
prefix="/opt/hilnas-agent"; confdir="/etc/hilnas-agent"; cachedir="/var/cache/hilnas-agent"
user="hilnas"; root=""; skip_install=0; extra_args=""

usage() { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --source) source_spec="$2"; shift 2;;
    --host) host="$2"; shift 2;;
    --port) port="$2"; shift 2;;
    --backend) backend="$2"; shift 2;;
    --power-sensor) sensor="$2"; shift 2;;
    --name) name="$2"; shift 2;;
    --prefix) prefix="$2"; shift 2;;
    --user) user="$2"; shift 2;;
    --extra-args) extra_args="$2"; shift 2;;
    --root) root="$2"; shift 2;;
    --skip-install) skip_install=1; shift;;
    -h|--help) usage 0;;
    *) echo "install_agent.sh: unknown option $1" >&2; usage 2;;
  esac
done
case "$port" in ''|*[!0-9]*) echo "install_agent.sh: --port must be a number, got '$port'" >&2; exit 2;; esac

if [ -z "$root" ] && [ "$(id -u)" -ne 0 ]; then
  echo "install_agent.sh: run as root (sudo), or stage files with --root DIR" >&2
  exit 2
fi

stage() { printf '%s%s' "$root" "$1"; }
mkdir -p "$(stage "$confdir")" "$(stage "$cachedir")" "$(stage /etc/systemd/system)"

if [ "$skip_install" -eq 0 ]; then
  python3 -m venv "$(stage "$prefix")"
  "$(stage "$prefix")/bin/pip" install --quiet --upgrade pip
  if [ -d "$source_spec" ]; then
    "$(stage "$prefix")/bin/pip" install --quiet "${source_spec}[agent]"
  else
    "$(stage "$prefix")/bin/pip" install --quiet "$source_spec"
  fi
fi

token_file="$(stage "$confdir/token")"
if [ ! -s "$token_file" ]; then
  python3 -c 'import secrets; print(secrets.token_urlsafe(32))' > "$token_file"
  chmod 600 "$token_file"
  echo "created a new token in $confdir/token: give it to the host as HILNAS_AGENT_TOKEN"
fi

cat > "$(stage "$confdir/agent.env")" <<ENV
# Options for \`hilnas-agent serve\` (see \`hilnas-agent serve --help\`).
HILNAS_AGENT_ARGS=--host $host --port $port --backend $backend --power-sensor $sensor --name $name $extra_args
ENV

sed -e "s|%%PREFIX%%|$prefix|g" -e "s|%%CONFDIR%%|$confdir|g" -e "s|%%CACHEDIR%%|$cachedir|g" \
    -e "s|%%USER%%|$user|g" -e "s|%%BACKEND%%|$backend|g" \
    "$here/systemd/hilnas-agent.service" > "$(stage /etc/systemd/system/hilnas-agent.service)"

if [ -n "$root" ]; then
  echo "staged the agent under $root (nothing was started)"
  exit 0
fi

id -u "$user" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$user"
for group in i2c dialout; do getent group "$group" >/dev/null || groupadd --system "$group"; done
chown -R "$user:$user" "$cachedir"
chown "root:$user" "$confdir/token"; chmod 640 "$confdir/token"
systemctl daemon-reload
systemctl enable --now hilnas-agent.service
sleep 2
systemctl --no-pager --lines=5 status hilnas-agent.service || {
  echo "install_agent.sh: the service did not start; see journalctl -u hilnas-agent" >&2; exit 1; }
echo "hilnas-agent is serving on $host:$port; from the host: hilnas devices describe grpc://$(hostname -I 2>/dev/null | awk '{print $1}'):$port"
