#!/usr/bin/env bash
# The .deb round trip, from one script, on a Debian/Ubuntu machine (run as root: it installs packages):
#   build the frozen app and the .deb → apt-get install ./llamadesk_*.deb → desktop-file-validate and
#   appstreamcli validate --no-net → the installed `llamadesk chat` answers with the bundled starter model →
#   the installed app opens under Xvfb, answers in its window, a screenshot is taken → an upgrade install keeps
#   the user's data → apt-get remove leaves no file behind except the user's data → the portable build: an AppImage
#   made from the same onedir (build_appimage.sh) runs with no FUSE and no llamadesk installed (extract-and-run):
#   --version, `chat` answers with the bundled starter model, its window opens under Xvfb and answers.
#
#   packaging/linux/deb_roundtrip.sh [PATH.deb]       (no argument: build it first with build_deb.sh)
#
# Environment: ROUNDTRIP_DIR (scratch and results, default build/deb/roundtrip: screenshot.png, summary.txt,
#              the test user's home; appimage/: the AppImage's screenshot.png, gui.log and its user's home),
#              ROUNDTRIP_GUI_CHAT=0 (only open the window, do not chat in it), ROUNDTRIP_APPIMAGE=0 (no AppImage).
# The test user is root with HOME=$ROUNDTRIP_DIR/home, so the platform user folders (~/.local/share/LlamaDesk, …)
# are fresh and easy to inspect; LLAMADESK_HOME is not set, so the real per-user locations are exercised.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
out="${ROUNDTRIP_DIR:-$root/build/deb/roundtrip}"
app_id="io.github.llamadesk.LlamaDesk"
gui_chat="${ROUNDTRIP_GUI_CHAT:-1}"
appimage_check="${ROUNDTRIP_APPIMAGE:-1}"
t0=$SECONDS

step() { printf '\n==> [%4ds] %s\n' "$((SECONDS - t0))" "$*" >&2; }
fail() { printf '\nROUND TRIP FAILED: %s\n' "$*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || fail "run as root (it installs and removes packages with apt-get)"
command -v apt-get >/dev/null 2>&1 || fail "needs a Debian/Ubuntu machine (apt-get)"

rm -rf "$out"
mkdir -p "$out"
summary="$out/summary.txt"
: > "$summary"
note() { printf '%s\n' "$*" | tee -a "$summary" >&2; }

step "Tools for the checks (desktop-file-utils, appstream, Xvfb, xdotool, scrot, binutils)"
tools=(desktop-file-utils appstream xvfb xauth xdotool scrot x11-utils binutils dpkg-dev)
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -qq --no-install-recommends "${tools[@]}" >/dev/null 2>&1 ||
  { apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends "${tools[@]}" >/dev/null; }

if dpkg-query -W -f='${Status}' llamadesk 2>/dev/null | grep -q 'install ok'; then
  step "Removing the LlamaDesk installed before this run"
  apt-get remove -y -qq llamadesk >/dev/null
fi
[ ! -e /opt/llamadesk ] || fail "/opt/llamadesk exists before installing (left over from something else)"

deb="${1:-}"
onedir=""  # the frozen app the .deb was made from, when this run built it
if [ -z "$deb" ]; then
  step "Build: the venv, the frozen app (checked: --version, --smoke-test, chat), the .deb"
  if [ ! -x .venv/bin/python ]; then
    make setup
  fi
  # PyInstaller can only bundle the X11 libraries Qt needs if they are on the build machine.
  packaging/linux/system_libs.sh .venv/bin/python
  build_started=$SECONDS
  deb="$(packaging/linux/build_deb.sh)"
  note "build (frozen app + .deb): $((SECONDS - build_started)) s"
  onedir="$root/dist/llamadesk"
fi
deb="$(cd "$(dirname "$deb")" && pwd)/$(basename "$deb")"
[ -f "$deb" ] || fail "no package at $deb"
version="$(dpkg-deb -f "$deb" Version)"
note "package: $deb"
note "package size (compressed): $(($(stat -c %s "$deb") / 1024 / 1024)) MiB ($(stat -c %s "$deb") bytes)"
note "installed size: $(($(dpkg-deb -f "$deb" Installed-Size) / 1024)) MiB"
note "Depends: $(dpkg-deb -f "$deb" Depends)"

# The test user: fresh home, the platform's user folders under it.
home="$out/home"
mkdir -p "$home"
as_user() { env -u LLAMADESK_HOME -u XDG_DATA_HOME -u XDG_CONFIG_HOME -u XDG_CACHE_HOME -u XDG_STATE_HOME \
  HOME="$home" "$@"; }

step "apt-get install $deb"
install_started=$SECONDS
apt-get install -y -qq "$deb" >/dev/null
install_s=$((SECONDS - install_started))
note "apt-get install: ${install_s} s"
dpkg -L llamadesk | sort > "$out/files.txt"
installed_marker="$out/installed.marker"
touch "$installed_marker"
[ "$(readlink -f /usr/bin/llamadesk)" = /opt/llamadesk/llamadesk ] || fail "/usr/bin/llamadesk does not lead to /opt"

step "First answer from the installed app: llamadesk chat with the bundled starter model"
answer_started=$SECONDS
model="$(as_user llamadesk models list 2>/dev/null | awk -F'\t' '$4 ~ /^\/opt\/llamadesk\/.*\.gguf$/ {print $4; exit}')" || true
if [ -z "$model" ]; then  # the models list does not show bundled models: find the file itself
  model="$(find /opt/llamadesk -name '*.gguf' -type f | head -n 1)"
  note "note: 'llamadesk models list' does not list the bundled model (llamadesk.bundled not wired into it)"
fi
[ -n "$model" ] || fail "no bundled model under /opt/llamadesk"
answer="$(as_user llamadesk chat --no-history --model "$model" --temperature 0 "What is 2+2?")"
first_answer_s=$((SECONDS - answer_started))
note "first answer: $answer"
case "$answer" in *4*) ;; *) fail "the starter model's answer has no 4" ;; esac
note "time from install to first answer: $((install_s + first_answer_s)) s (apt-get install ${install_s} s + chat ${first_answer_s} s)"

step "desktop-file-validate, appstreamcli validate --no-net"
desktop-file-validate "/usr/share/applications/$app_id.desktop" || fail "desktop-file-validate"
appstreamcli validate --no-net "/usr/share/metainfo/$app_id.metainfo.xml" >&2 || fail "appstreamcli validate"
for size in 16 32 48 64 128 256 512; do
  [ -f "/usr/share/icons/hicolor/${size}x${size}/apps/$app_id.png" ] || fail "no ${size}px icon"
done
[ -f "/usr/share/icons/hicolor/scalable/apps/$app_id.svg" ] || fail "no scalable icon"

step "Every library the bundle needs and does not carry is on the system (what Depends promises)"
# readelf fails on the non-ELF files (data, Python archives); only the NEEDED lines of the others count.
needed="$(find /opt/llamadesk -type f -print0 | xargs -0 sh -c 'readelf -d "$@" 2>/dev/null || true' readelf |
  sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | sort -u)"
carried="$(find /opt/llamadesk \( -type f -o -type l \) -printf '%f\n' | sort -u)"
unresolved=""
while IFS= read -r soname; do
  [ -n "$soname" ] || continue
  ldconfig -p | awk -v s="$soname" '$1 == s {found = 1} END {exit !found}' || unresolved="$unresolved $soname"
done < <(comm -23 <(printf '%s\n' "$needed") <(printf '%s\n' "$carried"))
[ -z "$unresolved" ] || fail "libraries neither bundled nor installed:$unresolved"

step "The installed app under Xvfb: window, $([ "$gui_chat" = 1 ] && echo "a reply in the window, ")screenshot, Ctrl+Q"
# The user has set temperature 0 in the sampling panel (saved in ~/.config/LlamaDesk/settings.json), so the
# reply in the window, and the screenshot, are the same on every run.
mkdir -p "$home/.config/LlamaDesk"
printf '{"sampling": {"temperature": 0.0}}\n' > "$home/.config/LlamaDesk/settings.json"
as_user xvfb-run -a -s "-screen 0 1280x800x24" "$root/packaging/linux/deb_gui_check.sh" "$out" "$gui_chat" || {
  cat "$out/gui.log" >&2 || true
  fail "the installed app under Xvfb (log: $out/gui.log)"
}
while IFS= read -r line; do note "GUI: $line"; done < "$out/gui-times.txt"
grep -q '"LlamaDesk"' "$out/wm_class.txt" || fail "WM_CLASS is not LlamaDesk: $(cat "$out/wm_class.txt")"
[ -s "$out/screenshot.png" ] || fail "no screenshot"
note "screenshot: $out/screenshot.png"
if [ "$gui_chat" = 1 ]; then
  id="$(as_user llamadesk history list | awk 'NR == 1 {print $1}')"
  gui_answer="$(as_user llamadesk history show "$id" | awk '/^\[assistant\]/ {getline; print; exit}')"
  note "GUI reply: $gui_answer"
  case "$gui_answer" in *4*) ;; *) note "warning: the reply in the window has no 4 (sampling settings not applied?)" ;; esac
fi

step "User data in the user's folders, nothing written into /opt/llamadesk"
data="$home/.local/share/LlamaDesk"
[ -f "$data/history.sqlite3" ] || fail "no history in $data"
written="$(find /opt/llamadesk -newer "$installed_marker" -print)"
[ -z "$written" ] || fail "the app wrote into its install folder: $written"
extra="$(comm -13 "$out/files.txt" <(find /opt/llamadesk | sort))"
[ -z "$extra" ] || fail "files in /opt/llamadesk that the package does not list: $extra"
as_user llamadesk history list > "$out/history-before.txt"

step "Upgrade install (same payload as version $version+roundtrip1): the user's data stays"
upgrade_dir="$out/upgrade"
dpkg-deb -R "$deb" "$upgrade_dir"
sed -i "s/^Version: .*/Version: $version+roundtrip1/" "$upgrade_dir/DEBIAN/control"
dpkg-deb --root-owner-group -Zgzip -z1 --build "$upgrade_dir" "$out/llamadesk_upgrade.deb" >/dev/null
rm -rf "$upgrade_dir"
apt-get install -y -qq "$out/llamadesk_upgrade.deb" >/dev/null
[ "$(dpkg-query -W -f='${Version}' llamadesk)" = "$version+roundtrip1" ] || fail "the upgrade did not install"
as_user llamadesk history list > "$out/history-after.txt"
cmp -s "$out/history-before.txt" "$out/history-after.txt" || fail "the history changed across the upgrade"
answer="$(as_user llamadesk chat --no-history --model "$model" --temperature 0 "What is 2+2?")"
case "$answer" in *4*) ;; *) fail "after the upgrade the starter model's answer has no 4" ;; esac
note "upgrade: history kept ($(wc -l < "$out/history-after.txt") conversations), answers again"

step "apt-get remove: nothing left but the user's data"
apt-get remove -y -qq llamadesk >/dev/null
! dpkg-query -W -f='${Status}' llamadesk 2>/dev/null | grep -q 'ok installed' || fail "llamadesk is still installed"
left=""
while IFS= read -r path; do
  if [ -e "$path" ] || [ -L "$path" ]; then
    [ -d "$path" ] && [ ! -L "$path" ] && [ "${path#/opt/llamadesk}" = "$path" ] && continue  # shared folders
    left="$left $path"
  fi
done < "$out/files.txt"
[ -z "$left" ] || fail "left behind after removal:$left"
[ ! -e /opt/llamadesk ] || fail "/opt/llamadesk is still there"
[ -f "$data/history.sqlite3" ] || fail "removing the app removed the user's history"
note "remove: no package file left; user data kept in $home/.local/share/LlamaDesk, ~/.config/LlamaDesk"
rm -f "$out/llamadesk_upgrade.deb"

if [ "$appimage_check" = 1 ]; then
  step "The portable build: an AppImage from the same onedir, run with no FUSE and no llamadesk installed"
  ai_out="$out/appimage"
  mkdir -p "$ai_out"
  if [ -z "$onedir" ]; then  # a .deb was given: its /opt/llamadesk is the onedir it was made from
    dpkg-deb -x "$deb" "$ai_out/payload"
    onedir="$ai_out/payload/opt/llamadesk"
  fi
  ai_started=$SECONDS
  appimage="$(APPIMAGE_SKIP_CHECKS=1 packaging/linux/build_appimage.sh "$onedir")"  # checked below
  note "AppImage: $appimage, made from $onedir in $((SECONDS - ai_started)) s (appimagetool: build_appimage.sh)"
  note "AppImage size: $(($(stat -c %s "$appimage") / 1024 / 1024)) MiB ($(stat -c %s "$appimage") bytes)"
  # A fresh user on another distribution: own home, nothing installed; the image is unpacked into ai_tmp and
  # deleted again when the app exits (APPIMAGE_EXTRACT_AND_RUN=1: no FUSE, as in a container).
  ai_home="$ai_out/home"
  ai_tmp="$ai_out/tmp"
  mkdir -p "$ai_home" "$ai_tmp"
  as_ai_user() { env -u LLAMADESK_HOME -u XDG_DATA_HOME -u XDG_CONFIG_HOME -u XDG_CACHE_HOME -u XDG_STATE_HOME \
    HOME="$ai_home" TMPDIR="$ai_tmp" APPIMAGE_EXTRACT_AND_RUN=1 "$@"; }
  if ldconfig -p | grep -q 'libfuse\.so\.2 '; then
    note "AppImage: libfuse2 is installed here, but the checks run with APPIMAGE_EXTRACT_AND_RUN=1"
  else
    plain="$(env -u APPIMAGE_EXTRACT_AND_RUN HOME="$ai_home" "$appimage" --version 2>&1)" && plain_rc=0 || plain_rc=$?
    note "AppImage without FUSE, started plainly: exit $plain_rc, '$(printf '%s' "$plain" | grep -m 1 -i fuse)'"
  fi

  ai_t=$SECONDS
  got="$(as_ai_user "$appimage" --version)"
  [ "$got" = "LlamaDesk $version" ] || fail "the AppImage's --version says '$got', want LlamaDesk $version"
  note "AppImage --version: $got ($((SECONDS - ai_t)) s, unpacking included)"

  ai_t=$SECONDS
  ai_model="$(as_ai_user "$appimage" models list 2>/dev/null |
    awk -F'\t' '$4 ~ /\/appimage_extracted_[^\/]*\/.*\.gguf$/ {print $4; exit}')" || true
  [ -n "$ai_model" ] || fail "the AppImage's 'models list' shows no bundled model inside the image"
  # The runtime unpacks into the same folder (named after the image's digest) on every start, so the path the
  # image's own `models list` printed is the bundled starter model again in the next run.
  answer="$(as_ai_user "$appimage" chat --no-history --model "$ai_model" --temperature 0 "What is 2+2?")"
  note "AppImage first answer: $answer ($((SECONDS - ai_t)) s for models list + chat, two unpackings)"
  case "$answer" in *4*) ;; *) fail "the AppImage's starter model answer has no 4" ;; esac
  left="$(find "$ai_tmp" -mindepth 1 -maxdepth 1 -name 'appimage_extracted_*')"
  [ -z "$left" ] || fail "the AppImage left its unpacked copy behind: $left"

  # The window is the AppImage itself; the history is read meanwhile by an unpacked copy of the same image.
  (cd "$ai_out" && "$appimage" --appimage-extract >/dev/null)
  mkdir -p "$ai_home/.config/LlamaDesk"
  printf '{"sampling": {"temperature": 0.0}}\n' > "$ai_home/.config/LlamaDesk/settings.json"
  as_ai_user GUI_CHECK_APP="$appimage" GUI_CHECK_CLI="$ai_out/squashfs-root/AppRun" GUI_CHECK_WINDOW_S=120 \
    xvfb-run -a -s "-screen 0 1280x800x24" "$root/packaging/linux/deb_gui_check.sh" "$ai_out" "$gui_chat" || {
    cat "$ai_out/gui.log" >&2 || true
    fail "the AppImage under Xvfb (log: $ai_out/gui.log)"
  }
  while IFS= read -r line; do note "AppImage GUI: $line"; done < "$ai_out/gui-times.txt"
  grep -q '"LlamaDesk"' "$ai_out/wm_class.txt" || fail "AppImage WM_CLASS is not LlamaDesk: $(cat "$ai_out/wm_class.txt")"
  [ -s "$ai_out/screenshot.png" ] || fail "no screenshot of the AppImage's window"
  note "AppImage screenshot: $ai_out/screenshot.png"
  if [ "$gui_chat" = 1 ]; then
    id="$(as_ai_user "$ai_out/squashfs-root/AppRun" history list | awk 'NR == 1 {print $1}')"
    gui_answer="$(as_ai_user "$ai_out/squashfs-root/AppRun" history show "$id" | awk '/^\[assistant\]/ {getline; print; exit}')"
    note "AppImage GUI reply: $gui_answer"
    case "$gui_answer" in *4*) ;; *) note "warning: the AppImage window's reply has no 4" ;; esac
  fi
  [ -f "$ai_home/.local/share/LlamaDesk/history.sqlite3" ] || fail "the AppImage kept no history in the user's folder"
  left="$(find "$ai_tmp" -mindepth 1 -maxdepth 1 -name 'appimage_extracted_*')"
  [ -z "$left" ] || fail "the AppImage left its unpacked copy behind: $left"
  rm -rf "$ai_out/squashfs-root" "$ai_out/payload"
fi

step "Round trip passed in $((SECONDS - t0)) s"
cat "$summary" >&2
