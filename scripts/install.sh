#!/usr/bin/env bash
# `sudo make install`: the services as packaged software on Debian / Raspberry Pi OS
# (docs/install.md). Idempotent: run it again after an update, or to repair owners and modes.
#
#   sudo make install                 this machine: users, /opt/timeout-hub with its venv, units
#                                     enabled, the Mosquitto drop-in, /etc/timeout-hub owners/modes
#   make install DESTDIR=DIR          the same files under DIR, nothing on this machine (a package
#                                     build); users are created only if DIR/etc/passwd exists (a
#                                     root file system such as a debootstrap folder)
#   SKIP_VENV=1                       do not (re)build /opt/timeout-hub/.venv
#   ENABLE="panel"                    a panel-only Pi Zero: enable (and build the venv for) only
#                                     these services (default "hub panel caller share")
#   ENABLE=org (make install-org)     the care organisation's server: its service and the care
#                                     worker's page, /etc/timeout-org and /var/lib/timeout-org
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
D=${DESTDIR:-}
D=${D%/}
APP=/opt/timeout-hub
ETC=/etc/timeout-hub
ORG=/etc/timeout-org
ORG_STATE=/var/lib/timeout-org
UNITS=/usr/lib/systemd/system
SERVICES=(timeout-hub-hub timeout-hub-panel timeout-hub-caller timeout-hub-share
          timeout-org-service timeout-org-web)

fail() { echo "install: $*" >&2; exit 1; }
say() { echo "install: $*"; }

ENABLE=${ENABLE:-hub panel caller share}
for s in $ENABLE; do
  case $s in hub|panel|caller|share|org) ;;
    *) fail "ENABLE: unknown service '$s' (hub, panel, caller, share, org)";; esac
done
enabled_has() { case " $ENABLE " in *" $1 "*) return 0;; esac; return 1; }
# the venv's extras: the share service needs the hub's (pyrage)
# PANEL_BLE=1: the panel also listens for the tags (bleak; docs/ble.md, "A second receiver")
EXTRAS=$( (for s in $ENABLE; do [ "$s" = share ] && echo hub || echo "$s"; done
           if [ -n "${PANEL_BLE:-}" ]; then echo panel-ble; fi) | sort -u | tr '\n' ' ')

if [ -z "$D" ]; then
  [ "$(id -u)" -eq 0 ] || fail "run as root (sudo make install), or give DESTDIR=DIR for a package build"
  command -v systemctl >/dev/null || fail "systemctl not found: this installs systemd services"
  command -v systemd-sysusers >/dev/null || fail "systemd-sysusers not found (package systemd)"
else
  mkdir -p "$D" || fail "cannot create DESTDIR $D"
  D=$(cd "$D" && pwd)
  [ "$D" != / ] || fail "DESTDIR=/ is this machine: run without DESTDIR"
fi

# --- the application: only what runs on a Pi (no sim/, tests/, bench/) ---------------------------
install -d -m 0755 "$D$APP"
PACKAGES="core mqtt dsp ble firmware report org"
for pkg in $PACKAGES; do
  rm -rf "${D:?}$APP/$pkg"       # files removed upstream must not linger
  (cd "$SRC" && find "$pkg" -name '*.py' -not -path '*/__pycache__/*') | while read -r f; do
    install -D -m 0644 "$SRC/$f" "$D$APP/$f"
  done
done
for f in pyproject.toml uv.lock README.md scripts/bootstrap.sh scripts/uv-requirements.txt; do
  install -D -m 0644 "$SRC/$f" "$D$APP/$f"
done
for dir in docs examples hardware; do
  rm -rf "${D:?}$APP/$dir"
  [ -d "$SRC/$dir" ] && cp -r "$SRC/$dir" "$D$APP/$dir"
done
chmod -R u=rwX,go=rX "$D$APP/docs" "$D$APP/examples" "$D$APP/hardware" 2>/dev/null || true
install -d -m 0755 "$D/usr/bin"
ln -sfn "$APP/.venv/bin/timeout-hub" "$D/usr/bin/timeout-hub"

# --- systemd: units, the Mosquitto drop-in, the users ---------------------------------------------
for s in "${SERVICES[@]}"; do install -D -m 0644 "$SRC/systemd/$s.service" "$D$UNITS/$s.service"; done
install -D -m 0644 "$SRC/systemd/mosquitto-timeout-hub.conf" "$D$UNITS/mosquitto.service.d/timeout-hub.conf"
install -D -m 0644 "$SRC/systemd/timeout-hub.sysusers" "$D/usr/lib/sysusers.d/timeout-hub.conf"

users_made=no
if [ -z "$D" ]; then
  systemd-sysusers /usr/lib/sysusers.d/timeout-hub.conf || fail "systemd-sysusers could not create the users"
  users_made=yes
elif [ -f "$D/etc/passwd" ] && [ -f "$D/etc/group" ]; then
  command -v systemd-sysusers >/dev/null || fail "systemd-sysusers not found (package systemd)"
  systemd-sysusers --root="$D" "$D/usr/lib/sysusers.d/timeout-hub.conf" \
    || fail "systemd-sysusers could not create the users in $D"
  users_made=yes
fi

# --- /etc/timeout-hub: who may read what -----------------------------------------------------------
# path (under /etc/timeout-hub)  mode  owner  group. Each service reads its own file and its own
# credentials, nothing else: the panel's user cannot read the caller's phone numbers. Files that
# do not exist yet (provisioning writes them) are listed in the manifest all the same.
PERMS=$(cat <<'EOF'
.                          0755 root           root
household.toml             0640 root           timeout-hub
sensors.toml               0640 root           timeout-hub
panel.toml                 0640 root           timeout-panel
caller.toml                0600 timeout-caller timeout-caller
broker                     0755 root           root
broker/mosquitto.conf      0644 root           root
broker/passwd              0600 mosquitto      mosquitto
broker/acl                 0600 mosquitto      mosquitto
broker/data                0700 mosquitto      mosquitto
broker/tls                 0755 root           root
broker/tls/ca.crt          0644 root           root
broker/tls/server.crt      0644 root           root
broker/tls/server.key      0600 mosquitto      mosquitto
broker/credentials         0711 root           root
broker/credentials/hub.json    0600 timeout-hub    timeout-hub
broker/credentials/panel.json  0600 timeout-panel  timeout-panel
broker/credentials/caller.json 0600 timeout-caller timeout-caller
broker/credentials/bridge.json 0600 timeout-share  timeout-share
broker/bridge              0711 mosquitto      mosquitto
broker/bridge/org-age.pub  0644 mosquitto      mosquitto
EOF
)
# The care organisation's server (ENABLE=org; docs/care.md): the age key is the service's alone;
# the page's log-ins and TLS key are the page's; the broker's files stay the broker's.
ORG_PERMS=$(cat <<'EOF'
.                          0755 root            root
age.key                    0600 timeout-org     timeout-org-store
service.toml               0600 timeout-org     timeout-org-store
households.json            0600 timeout-org     timeout-org-store
tls                        0711 root            root
tls/ca.crt                 0644 root            root
clients                    0711 root            root
clients/care.crt           0644 timeout-org     timeout-org-store
clients/care.key           0600 timeout-org     timeout-org-store
web                        0700 timeout-org-web timeout-org-store
web/workers.json           0600 timeout-org-web timeout-org-store
web/web.crt                0644 timeout-org-web timeout-org-store
web/web.key                0600 timeout-org-web timeout-org-store
EOF
)

# A name's number in the target's own user database (DESTDIR's, or this machine's).
lookup() {  # lookup passwd|group NAME -> id, or nothing
  if [ -z "$D" ]; then getent "$1" "$2" | cut -d: -f3 || true
  elif [ -f "$D/etc/$1" ]; then awk -F: -v n="$2" '$1 == n {print $3}' "$D/etc/$1"; fi
}

install -d -m 0755 "$D$ETC" "$D$ETC/broker"
[ -d "$D$ETC/broker/credentials" ] || install -d -m 0711 "$D$ETC/broker/credentials"
manifest="$D$APP/install-manifest.txt"
{
  echo "# Owners and modes under $ETC (and $ORG, $ORG_STATE) that \`make install\` sets (docs/install.md)."
  echo "# path mode owner group uid gid present"
} > "$manifest"
can_chown=no
[ "$(id -u)" -eq 0 ] && [ "$users_made" = yes ] && can_chown=yes
set_perms() {  # set_perms BASE < table: owners and modes of what exists, one manifest line each
local base=$1 rel mode user group path uid gid present shown
while read -r rel mode user group; do
  [ -n "$rel" ] || continue
  path="$D$base/$rel"
  [ "$rel" = . ] && path="$D$base"
  uid=$(lookup passwd "$user"); gid=$(lookup group "$group")
  present=no
  if [ -e "$path" ]; then
    present=yes
    chmod "$mode" "$path"
    if [ "$can_chown" = yes ]; then
      if [ -n "$uid" ] && [ -n "$gid" ]; then chown -h "$uid:$gid" "$path"
      else
        # a user that is not there (mosquitto not installed yet): nobody but root may read it
        chown -h 0:0 "$path"; say "warning: $user/$group unknown, $base/$rel left to root" >&2
      fi
    fi
  fi
  shown="$base/$rel"; [ "$rel" = . ] && shown=$base
  echo "$shown $mode $user $group ${uid:--} ${gid:--} $present"
done
}
set_perms "$ETC" <<< "$PERMS" >> "$manifest"
if enabled_has org; then
  install -d -m 0755 "$D$ORG"
  [ -d "$D$ORG/web" ] || install -d -m 0700 "$D$ORG/web"
  # the store's folder: the service's StateDirectory, which the page writes too (its unit's
  # ReadWritePaths= needs it before the service ever ran)
  [ -d "$D$ORG_STATE" ] || install -d -m 2770 "$D$ORG_STATE"
  # made here 0660, not by the first process as 0600: both users open it (SQLite gives its
  # -wal and -shm files the database's mode)
  [ -e "$D$ORG_STATE/org.sqlite3" ] || install -m 0660 /dev/null "$D$ORG_STATE/org.sqlite3"
fi
if enabled_has org || [ -d "$D$ORG" ]; then
  set_perms "$ORG" <<< "$ORG_PERMS" >> "$manifest"
  set_perms "$ORG_STATE" <<< ".                          2770 timeout-org     timeout-org-store
org.sqlite3                0660 timeout-org     timeout-org-store" >> "$manifest"
fi
chmod 0644 "$manifest"

if [ -n "$D" ]; then
  say "installed under $D (users: $users_made; owners and modes in $APP/install-manifest.txt)"
  exit 0
fi

# --- this machine: the venv, then systemd ----------------------------------------------------------
if [ -z "${SKIP_VENV:-}" ]; then
  say "building $APP/.venv (extras: $EXTRAS; no dev tools)"
  (cd "$APP" && EXTRAS="$EXTRAS" NO_DEV=1 bash scripts/bootstrap.sh) \
    || fail "the venv in $APP could not be built (see above)"
  # ProtectSystem=strict: the services cannot write byte code, so compile it now
  (cd "$APP" && "$APP/.venv/bin/python" -m compileall -q $PACKAGES) >/dev/null || true
fi
systemctl daemon-reload
enabled=()
for s in $ENABLE; do
  case $s in org) enabled+=(timeout-org-service.service timeout-org-web.service);;
    *) enabled+=("timeout-hub-$s.service");; esac
done
# the broker runs on the hub's Pi; a panel-only Pi talks to it over TLS
case " $ENABLE " in *" hub "*) enabled+=(mosquitto.service);; esac
systemctl enable "${enabled[@]}" >/dev/null
if [ -f "$ETC/broker/mosquitto.conf" ] || [ "$ENABLE" = panel ] || [ -f "$ORG/service.toml" ]; then
  systemctl try-restart "${enabled[@]}"
  say "enabled; running services restarted with the new version"
else
  say "enabled, not started: provision the household (docs/install.md), then"
  say "  systemctl restart mosquitto && systemctl start ${enabled[*]}"
fi
