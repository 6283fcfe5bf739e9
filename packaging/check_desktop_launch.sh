#!/usr/bin/env bash
# Start SSL Studio the way a desktop menu does and check that its window appears.
#
#   xvfb-run -a -s "-screen 0 1400x900x24" packaging/check_desktop_launch.sh [EXEC] [PNG]
#
# EXEC: the program the menu entry starts (default: sslstudio from .venv; give the
# bundle's packaging/dist/sslstudio/sslstudio to check the bundle). PNG: a screenshot
# of the screen once the window is up (default /tmp/desktop-launch.png).
#
# What it does, in a throw-away XDG data folder and SSLSTUDIO_HOME: installs the menu
# entry and icons with `install-desktop --exec EXEC`, launches the entry by its id with
# gtk-launch (what GNOME, Xfce and most docks do on a click), waits for a visible
# "SSL Studio" window, prints its WM_CLASS, saves the screenshot and closes the window.
# Needs: an X display, gtk-launch (Debian: libgtk-3-bin), xdotool, xprop (x11-utils).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
EXEC="${1:-$ROOT/.venv/bin/sslstudio}"
PNG="${2:-/tmp/desktop-launch.png}"
PY="$ROOT/.venv/bin/python"
APP_ID=org.sslstudio.SSLStudio

for tool in gtk-launch xdotool xprop; do
    command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install libgtk-3-bin xdotool x11-utils)" >&2; exit 2; }
done
[ -n "${DISPLAY:-}" ] || { echo "no DISPLAY: run under xvfb-run -a" >&2; exit 2; }

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
export XDG_DATA_HOME="$TMP/share" SSLSTUDIO_HOME="$TMP/home"
export XDG_DATA_DIRS="$XDG_DATA_HOME:${XDG_DATA_DIRS:-/usr/local/share:/usr/share}"

"$PY" -m sslstudio.resources install-desktop --exec "$EXEC"
entry="$XDG_DATA_HOME/applications/$APP_ID.desktop"
grep '^Exec=' "$entry"

start=$(date +%s.%N)
gtk-launch "$APP_ID"
if ! wid=$(timeout 120 xdotool search --sync --onlyvisible --name '^SSL Studio'); then
    echo "FAIL: no SSL Studio window within 120 s" >&2
    exit 1
fi
wid=$(echo "$wid" | head -1)
shown=$(date +%s.%N)
printf 'window %s "%s" shown %.1f s after the launch\n' "$wid" "$(xdotool getwindowname "$wid")" \
    "$(awk "BEGIN{print $shown - $start}")"
xprop -id "$wid" WM_CLASS _GTK_APPLICATION_ID 2>/dev/null || true
sleep "${SETTLE:-8}"   # first start: the sample dataset is generated and scanned
QT_QPA_PLATFORM=xcb "$PY" - "$PNG" <<'PYEOF'
import sys
from PySide6.QtGui import QGuiApplication
app = QGuiApplication([])
ok = app.primaryScreen().grabWindow(0).save(sys.argv[1])
print(("screenshot: " if ok else "screenshot FAILED: ") + sys.argv[1])
PYEOF
# Quit as a user would (File ▸ Quit, Ctrl+Q): the app must shut down cleanly.
xdotool windowfocus --sync "$wid" key ctrl+q
for _ in $(seq 30); do
    xdotool search --onlyvisible --name '^SSL Studio' >/dev/null 2>&1 || { echo "closed"; exit 0; }
    sleep 1
done
echo "FAIL: the window did not close" >&2
exit 1
