#!/usr/bin/env bash
# Put Anomaly Inspector into the desktop's application menu (per user; no root needed):
#     bash packaging/install-desktop-entry.sh [EXECUTABLE]          # from a clone
#     dist/anomaly-inspector/install-desktop-entry.sh               # from the bundle (build.sh copies it there)
#     bash packaging/install-desktop-entry.sh --uninstall
# EXECUTABLE defaults to the bundle beside this script or in dist/, else the `anomaly-inspector` on PATH.
# Writes ~/.local/share/applications/anomaly-inspector.desktop (Exec set to the absolute executable) and the
# icon sizes to ~/.local/share/icons/hicolor/NxN/apps/ (and the SVG to scalable/apps/).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
data=${XDG_DATA_HOME:-$HOME/.local/share}
apps="$data/applications"
icons="$data/icons/hicolor"
name=anomaly-inspector

if [ "${1:-}" = "--uninstall" ]; then
  rm -f "$apps/$name.desktop" "$icons"/*/apps/"$name".png "$icons/scalable/apps/$name.svg"
  echo "removed the desktop entry and icons from $data"
  exit 0
fi

# The resources folder: in the bundle it sits in _internal/, in a clone beside packaging/.
for candidate in "$here/_internal/resources" "$here/../resources"; do
  if [ -f "$candidate/$name.desktop" ]; then res=$(cd "$candidate" && pwd); break; fi
done
[ -n "${res:-}" ] || { echo "error: no resources/$name.desktop found near $here" >&2; exit 2; }

exe=${1:-}
if [ -z "$exe" ]; then
  for candidate in "$here/$name" "$here/../dist/$name/$name"; do
    if [ -x "$candidate" ]; then exe=$candidate; break; fi
  done
fi
[ -n "$exe" ] || exe=$(command -v "$name" || true)
[ -n "$exe" ] && [ -x "$exe" ] || { echo "error: no $name executable found; give its path" >&2; exit 2; }
exe=$(cd "$(dirname "$exe")" && pwd)/$(basename "$exe")

mkdir -p "$apps" "$icons/scalable/apps"
for png in "$res"/icons/"$name"-*.png; do
  size=${png##*-}; size=${size%.png}
  mkdir -p "$icons/${size}x${size}/apps"
  cp "$png" "$icons/${size}x${size}/apps/$name.png"
done
cp "$res/icons/$name.svg" "$icons/scalable/apps/$name.svg"
# Quote the path for the Exec key (spaces are allowed inside double quotes there).
sed -e "s|^Exec=.*|Exec=\"$exe\" %f|" -e "s|^TryExec=.*|TryExec=$exe|" "$res/$name.desktop" > "$apps/$name.desktop"
command -v update-desktop-database >/dev/null && update-desktop-database -q "$apps" || true
command -v gtk-update-icon-cache >/dev/null && gtk-update-icon-cache -q -t "$icons" 2>/dev/null || true
echo "installed $apps/$name.desktop (runs $exe) and icons under $icons"
