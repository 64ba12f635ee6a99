#!/usr/bin/env bash
# Builds the LlamaDesk .deb with dpkg-deb from the frozen onedir (built first by packaging/pyinstaller/build.sh
# unless a bundle folder is given) and prints the path of the .deb.
#
#   packaging/linux/build_deb.sh [BUNDLE_DIR]
#
# Layout: /opt/llamadesk (the onedir, starter model inside), /usr/bin/llamadesk → /opt/llamadesk/llamadesk,
# /usr/share/applications/<app-id>.desktop, /usr/share/icons/hicolor/*/apps/<app-id>.{png,svg},
# /usr/share/metainfo/<app-id>.metainfo.xml, /usr/share/doc/llamadesk/copyright.
# Depends: the packages owning the shared libraries that bundled binaries need and the bundle does not carry
# (found with readelf and dpkg -S on this machine), libc6 at the newest GLIBC symbol version used, and the
# fontconfig configuration (which pulls in a font). No maintainer scripts: dpkg's triggers refresh the icon
# cache and the desktop database, and removal deletes exactly the files listed in the package.
#
# Environment: DEB_DIR (output folder, default dist/), DEB_COMPRESSION (xz|zstd|gzip, default xz),
#              DEB_VARIANT (e.g. cuda: package llamadesk-cuda, which Provides/Conflicts/Replaces llamadesk),
#              DEB_LEVEL (compression level, default 6:
#              -9 saves ~1 % and takes twice as long).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
here="$root/packaging/linux"
app_id="io.github.llamadesk.LlamaDesk"
out_dir="${DEB_DIR:-$root/dist}"
compression="${DEB_COMPRESSION:-xz}"
level="${DEB_LEVEL:-6}"

for tool in dpkg-deb dpkg-query readelf ldconfig; do
  command -v "$tool" >/dev/null 2>&1 || { echo "build_deb.sh: needs $tool (apt-get install dpkg binutils)" >&2; exit 2; }
done

bundle="${1:-}"
if [ -z "$bundle" ]; then
  bundle="$("$root/packaging/pyinstaller/build.sh")"
fi
bundle="$(cd "$bundle" && pwd)"
[ -x "$bundle/llamadesk" ] || { echo "build_deb.sh: $bundle/llamadesk is not a frozen LlamaDesk" >&2; exit 2; }

version="$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$root/llamadesk/__init__.py")"
[ -n "$version" ] || { echo "build_deb.sh: cannot read __version__ from llamadesk/__init__.py" >&2; exit 1; }
arch="$(dpkg --print-architecture)"
variant="${DEB_VARIANT:-}"
package="llamadesk${variant:+-$variant}"
name="${package}_${version}_${arch}"
stage="$root/build/deb/$name"
rm -rf "$stage"
mkdir -p "$stage/DEBIAN" "$stage/opt" "$stage/usr/bin" "$stage/usr/share/applications" \
  "$stage/usr/share/metainfo" "$stage/usr/share/doc/llamadesk"

echo "Staging $name in $stage" >&2
cp -a "$bundle" "$stage/opt/llamadesk"
ln -s /opt/llamadesk/llamadesk "$stage/usr/bin/llamadesk"
install -m 0644 "$here/$app_id.desktop" "$stage/usr/share/applications/$app_id.desktop"
install -m 0644 "$here/$app_id.metainfo.xml" "$stage/usr/share/metainfo/$app_id.metainfo.xml"
for png in "$root"/assets/icons/llamadesk-*.png; do
  size="$(basename "$png" .png)"
  size="${size#llamadesk-}"
  install -D -m 0644 "$png" "$stage/usr/share/icons/hicolor/${size}x${size}/apps/$app_id.png"
done
install -D -m 0644 "$root/assets/icons/llamadesk.svg" "$stage/usr/share/icons/hicolor/scalable/apps/$app_id.svg"
cat > "$stage/usr/share/doc/llamadesk/copyright" <<'EOF'
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: LlamaDesk
Source: https://github.com/llamadesk/llamadesk

Files: *
Copyright: LlamaDesk developers
License: Apache-2.0
 On Debian systems the full text is in /usr/share/common-licenses/Apache-2.0.

Files: opt/llamadesk/_internal/*
Comment: Bundled runtime, each under its own license: CPython (PSF-2.0), Qt 6 and PySide6 (LGPL-3.0, linked
 dynamically; the libraries can be replaced in /opt/llamadesk/_internal/PySide6/Qt/lib), llama.cpp and
 llama-cpp-python (MIT), NumPy and OpenBLAS (BSD-3-Clause), huggingface_hub (Apache-2.0), and the starter
 model SmolLM2-135M-Instruct by Hugging Face (Apache-2.0).
License: various
EOF

# Every file world-readable, nothing group/world-writable (the cache copy of the model can be 0600).
chmod -R u+rwX,go+rX,go-w "$stage"

# --- Depends: what bundled binaries need that the bundle does not carry ------------------------------------------
elf_list="$(mktemp)"
trap 'rm -f "$elf_list"' EXIT
find "$stage/opt/llamadesk" -type f -print0 | while IFS= read -r -d '' f; do
  [ "$(head -c 4 "$f" | od -An -c | tr -d ' \n')" = '177ELF' ] && printf '%s\n' "$f"
done > "$elf_list"
needed="$(xargs -d '\n' readelf -d < "$elf_list" 2>/dev/null | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | sort -u)"
carried="$(find "$stage/opt/llamadesk" \( -type f -o -type l \) -printf '%f\n' | sort -u)"
external="$(comm -23 <(printf '%s\n' "$needed") <(printf '%s\n' "$carried"))"
multiarch="$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch 2>/dev/null || true)"

owner_of() {  # soname → Debian package that owns it on this machine
  local soname="$1" path candidate
  path="$(ldconfig -p | awk -v s="$soname" -v ma="$multiarch" '$1 == s && (ma == "" || index($NF, ma)) {print $NF; exit}')"
  [ -n "$path" ] || return 1
  for candidate in "$path" "$(readlink -f "$path")" "${path#/usr}" "/usr${path}"; do
    dpkg-query -S "$candidate" 2>/dev/null | head -n 1 | cut -d: -f1 && return 0
  done
  return 1
}

packages=(fontconfig-config)  # /etc/fonts for the bundled libfontconfig; it depends on a font package
missing=()
while IFS= read -r soname; do
  [ -n "$soname" ] || continue
  case "$soname" in  # the GPU driver's own libraries: they come with the driver, never from a package we name
    libcuda.so.* | libnvidia-*.so.*) continue ;;
  esac
  if pkg="$(owner_of "$soname")" && [ -n "$pkg" ]; then
    packages+=("$pkg")
  else
    missing+=("$soname")
  fi
done <<< "$external"
if [ "${#missing[@]}" -gt 0 ]; then
  echo "build_deb.sh: cannot tell which package provides: ${missing[*]} (install them, then build again)" >&2
  exit 1
fi
glibc="$(xargs -d '\n' readelf -V < "$elf_list" 2>/dev/null | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' |
  sort -t. -k1,1n -k2,2n -k3,3n -u | tail -n 1)"
depends=""
while IFS= read -r pkg; do
  if [ "$pkg" = libc6 ] && [ -n "$glibc" ]; then pkg="libc6 (>= $glibc)"; fi
  depends="${depends:+$depends, }$pkg"
done < <(printf '%s\n' "${packages[@]}" | sort -u)

installed_kb="$(du -sk --apparent-size --exclude=DEBIAN "$stage" | cut -f1)"
sed -e "s/@PACKAGE@/$package/" -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" \
  -e "s/@INSTALLED_SIZE@/$installed_kb/" -e "s/@DEPENDS@/$depends/" "$here/control.in" > "$stage/DEBIAN/control"
if [ -n "$variant" ]; then  # one LlamaDesk at a time in /opt/llamadesk
  sed -i "/^Depends:/a Provides: llamadesk\\nConflicts: llamadesk\\nReplaces: llamadesk" "$stage/DEBIAN/control"
fi
chmod 0644 "$stage/DEBIAN/control"

if command -v desktop-file-validate >/dev/null 2>&1; then
  desktop-file-validate "$stage/usr/share/applications/$app_id.desktop"
fi
if command -v appstreamcli >/dev/null 2>&1; then
  appstreamcli validate --no-net "$stage/usr/share/metainfo/$app_id.metainfo.xml" >&2
fi

mkdir -p "$out_dir"
deb="$out_dir/$name.deb"
started=$SECONDS
dpkg-deb --root-owner-group -Z"$compression" -z"$level" --build "$stage" "$deb" >&2
model_kb="$(find "$stage/opt/llamadesk" -name '*.gguf' -type f -exec du -sk --apparent-size {} + | awk '{s += $1} END {print s + 0}')"
{
  echo "Depends: $depends"
  echo "Installed size: $((installed_kb / 1024)) MiB (bundled models: $((model_kb / 1024)) MiB)"
  echo "Package: $deb, $(($(stat -c %s "$deb") / 1024 / 1024)) MiB ($compression -$level, $((SECONDS - started)) s)"
} >&2
echo "$deb"
