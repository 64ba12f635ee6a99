#!/usr/bin/env bash
# Checks that the system libraries Qt's X11 (xcb) platform plugin needs are present; PyPI's PySide6 wheels
# do not carry them. On Debian/Ubuntu as root it installs what is missing; otherwise it prints the command.
#   packaging/linux/system_libs.sh PYTHON
# Never fails the caller: every step that can fail ends in `|| exit 0` or a message.
set -euo pipefail
python="${1:-python3}"
[ "$(uname -s)" = Linux ] || exit 0
plugin="$("$python" -c 'import PySide6, os; print(os.path.join(os.path.dirname(PySide6.__file__), "Qt/plugins/platforms/libqxcb.so"))' 2>/dev/null)" || exit 0
[ -f "$plugin" ] || exit 0
missing="$(ldd "$plugin" 2>/dev/null | awk '/not found/ {print $1}' | sort -u)" || exit 0
[ -n "$missing" ] || exit 0
# library soname → Debian package
declare -A pkg=(
  [libxcb-icccm.so.4]=libxcb-icccm4 [libxcb-keysyms.so.1]=libxcb-keysyms1 [libxcb-cursor.so.0]=libxcb-cursor0
  [libxcb-image.so.0]=libxcb-image0 [libxcb-render-util.so.0]=libxcb-render-util0 [libxcb-xkb.so.1]=libxcb-xkb1
  [libxkbcommon-x11.so.0]=libxkbcommon-x11-0 [libxkbcommon.so.0]=libxkbcommon0 [libxcb-shape.so.0]=libxcb-shape0
  [libxcb-randr.so.0]=libxcb-randr0 [libxcb-xinerama.so.0]=libxcb-xinerama0 [libEGL.so.1]=libegl1
  [libGL.so.1]=libgl1 [libfontconfig.so.1]=libfontconfig1 [libdbus-1.so.3]=libdbus-1-3 [libX11-xcb.so.1]=libx11-xcb1
)
packages=(libxcb-cursor0)
for lib in $missing; do
  if [ -n "${pkg[$lib]:-}" ]; then packages+=("${pkg[$lib]}"); fi
done
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  echo "Installing the X11 libraries Qt needs: ${packages[*]}" >&2
  (apt-get install -y --no-install-recommends "${packages[@]}" >/dev/null 2>&1 ||
   { apt-get update -qq >/dev/null 2>&1 && apt-get install -y --no-install-recommends "${packages[@]}" >/dev/null; }) ||
    echo "Could not install ${packages[*]}; the window may not open." >&2
else
  echo "Qt's X11 plugin needs: $missing" >&2
  echo "On Debian/Ubuntu: sudo apt-get install ${packages[*]}" >&2
fi
exit 0
