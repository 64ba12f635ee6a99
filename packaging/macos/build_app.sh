#!/usr/bin/env bash
# Builds LlamaDesk.app (PyInstaller, Metal on Apple Silicon) and LlamaDesk-<version>-macos-<arch>.dmg; signs and
# notarizes both when the signing secrets are present, otherwise the app is ad-hoc signed (runs on this Mac; other
# Macs need right-click → Open the first time).
#
#   packaging/macos/build_app.sh          # on macOS, after `make setup BACKEND=metal`
#
# Signing (all optional; CI sets them from repository secrets):
#   LLAMADESK_CODESIGN_IDENTITY   "Developer ID Application: Name (TEAMID)", in a keychain this job can use
#   APPLE_ID, APPLE_TEAM_ID, APPLE_APP_PASSWORD   notarize with notarytool and staple the ticket
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
[ "$(uname -s)" = Darwin ] || { echo "build_app.sh: runs on macOS only" >&2; exit 2; }

version="$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' llamadesk/__init__.py)"
arch="$(uname -m)"
dist="${DIST_DIR:-$root/dist}"
identity="${LLAMADESK_CODESIGN_IDENTITY:-}"
export LLAMADESK_CODESIGN_IDENTITY="$identity"  # the spec signs every binary with it (hardened runtime)

app="$(DIST_DIR="$dist" packaging/pyinstaller/build.sh)"
case "$app" in
  *.app) [ -d "$app" ] || { echo "build_app.sh: $app was not built" >&2; exit 1; } ;;
  *) echo "build_app.sh: expected an .app, got $app" >&2; exit 1 ;;
esac

if [ -n "$identity" ]; then
  echo "Signing $app as $identity" >&2
  codesign --force --options runtime --timestamp --entitlements packaging/macos/entitlements.plist \
    --sign "$identity" "$app"
  codesign --verify --deep --strict --verbose=2 "$app"
else
  echo "No LLAMADESK_CODESIGN_IDENTITY: the app stays ad-hoc signed and is not notarized" >&2
fi

dmg="$dist/LlamaDesk-$version-macos-$arch.dmg"
rm -f "$dmg"
if command -v create-dmg >/dev/null 2>&1; then
  # create-dmg exits 2 when it could not set the Finder layout (no GUI session) but the image is fine.
  create-dmg --volname "LlamaDesk $version" --volicon assets/icons/llamadesk.icns \
    --window-size 560 340 --icon-size 96 --icon "LlamaDesk.app" 140 160 --app-drop-link 420 160 \
    --no-internet-enable "$dmg" "$app" || [ $? -eq 2 ]
else
  stage="$(mktemp -d)"
  trap 'rm -rf "$stage"' EXIT
  cp -R "$app" "$stage/"
  ln -s /Applications "$stage/Applications"
  hdiutil create -volname "LlamaDesk $version" -srcfolder "$stage" -fs HFS+ -format UDZO -ov "$dmg"
fi

if [ -n "$identity" ]; then
  codesign --force --timestamp --sign "$identity" "$dmg"
  if [ -n "${APPLE_ID:-}" ] && [ -n "${APPLE_TEAM_ID:-}" ] && [ -n "${APPLE_APP_PASSWORD:-}" ]; then
    echo "Notarizing $dmg" >&2
    xcrun notarytool submit "$dmg" --apple-id "$APPLE_ID" --team-id "$APPLE_TEAM_ID" \
      --password "$APPLE_APP_PASSWORD" --wait
    xcrun stapler staple "$dmg"
    xcrun stapler validate "$dmg"
  else
    echo "No APPLE_ID/APPLE_TEAM_ID/APPLE_APP_PASSWORD: signed but not notarized" >&2
  fi
fi

echo "App: $app ($(du -sh "$app" | cut -f1)); disk image: $dmg ($(du -h "$dmg" | cut -f1))" >&2
echo "$dmg"
