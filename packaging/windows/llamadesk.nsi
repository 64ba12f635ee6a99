; LlamaDesk installer for Windows (NSIS 3, Unicode). Per-user: installs into %LOCALAPPDATA%\Programs\LlamaDesk
; without administrator rights, adds a Start-menu entry and an uninstaller (Settings → Apps lists it).
;
;   makensis /DVERSION=0.1.0 /DSOURCE_DIR=..\..\dist\LlamaDesk /DVARIANT=cpu packaging\windows\llamadesk.nsi
;
; SOURCE_DIR is the PyInstaller onedir (LlamaDesk.exe windowed, llamadesk-cli.exe console, _internal\).
; User data (history, settings, models) lives in %LOCALAPPDATA%\LlamaDesk (platformdirs), never in the install
; folder: upgrades replace the program files only, and uninstalling leaves the user's data alone.
; Paths use forward slashes so that makensis on Linux (used by the packaging tests) reads them too.

Unicode true
ManifestDPIAware true
RequestExecutionLevel user
SetCompressor /SOLID lzma

!ifndef VERSION
  !define VERSION "0.1.0"  ; kept equal to llamadesk.__version__ (tests/packaging checks it); CI passes /DVERSION
!endif
!ifndef SOURCE_DIR
  !define SOURCE_DIR "../../dist/LlamaDesk"
!endif
!ifndef VARIANT
  !define VARIANT "cpu"
!endif
!ifndef OUT_DIR
  !define OUT_DIR "../../dist"
!endif

!define APP_NAME "LlamaDesk"
!define APP_ID "io.github.llamadesk.LlamaDesk"
!define PUBLISHER "LlamaDesk developers"
!define MAIN_EXE "LlamaDesk.exe"
!define CLI_EXE "llamadesk-cli.exe"
!define ICON "../../assets/icons/llamadesk.ico"
!define UNINSTALL_KEY "Software\Microsoft\Windows\CurrentVersion\Uninstall\${APP_NAME}"

Name "${APP_NAME}"
OutFile "${OUT_DIR}/LlamaDesk-${VERSION}-windows-x64-${VARIANT}-setup.exe"
InstallDir "$LOCALAPPDATA\Programs\${APP_NAME}"
InstallDirRegKey HKCU "${UNINSTALL_KEY}" "InstallLocation"
BrandingText "${APP_NAME} ${VERSION}"

VIProductVersion "${VERSION}.0"
VIAddVersionKey "ProductName" "${APP_NAME}"
VIAddVersionKey "ProductVersion" "${VERSION}"
VIAddVersionKey "FileVersion" "${VERSION}"
VIAddVersionKey "FileDescription" "${APP_NAME} installer"
VIAddVersionKey "CompanyName" "${PUBLISHER}"
VIAddVersionKey "LegalCopyright" "Apache-2.0"

!include "MUI2.nsh"
!include "FileFunc.nsh"

!define MUI_ICON "${ICON}"
!define MUI_UNICON "${ICON}"
!define MUI_ABORTWARNING
!define MUI_FINISHPAGE_RUN "$INSTDIR\${MAIN_EXE}"
!define MUI_FINISHPAGE_RUN_TEXT "Start ${APP_NAME}"

!insertmacro MUI_PAGE_WELCOME
!insertmacro MUI_PAGE_DIRECTORY
!insertmacro MUI_PAGE_INSTFILES
!insertmacro MUI_PAGE_FINISH
!insertmacro MUI_UNPAGE_CONFIRM
!insertmacro MUI_UNPAGE_INSTFILES
!insertmacro MUI_LANGUAGE "English"

Function .onInit
  SetShellVarContext current  ; Start menu and registry of this user only
FunctionEnd

Function un.onInit
  SetShellVarContext current
FunctionEnd

Section "LlamaDesk" SecMain
  SectionIn RO
  ; An upgrade: remove the previous program files first so that no stale library is left behind.
  ; Only what the installer put there is removed; user data is elsewhere (%LOCALAPPDATA%\LlamaDesk).
  RMDir /r "$INSTDIR\_internal"
  Delete "$INSTDIR\${MAIN_EXE}"
  Delete "$INSTDIR\${CLI_EXE}"

  SetOutPath "$INSTDIR"
  File "${SOURCE_DIR}/${MAIN_EXE}"
  File "${SOURCE_DIR}/${CLI_EXE}"
  File /r "${SOURCE_DIR}/_internal"
  File "/oname=llamadesk.ico" "${ICON}"

  WriteUninstaller "$INSTDIR\uninstall.exe"
  CreateShortCut "$SMPROGRAMS\${APP_NAME}.lnk" "$INSTDIR\${MAIN_EXE}" "" "$INSTDIR\${MAIN_EXE}" 0 \
    SW_SHOWNORMAL "" "Chat with language models on your own computer"

  ${GetSize} "$INSTDIR" "/S=0K" $0 $1 $2
  WriteRegStr HKCU "${UNINSTALL_KEY}" "DisplayName" "${APP_NAME}"
  WriteRegStr HKCU "${UNINSTALL_KEY}" "DisplayVersion" "${VERSION}"
  WriteRegStr HKCU "${UNINSTALL_KEY}" "Publisher" "${PUBLISHER}"
  WriteRegStr HKCU "${UNINSTALL_KEY}" "DisplayIcon" "$INSTDIR\llamadesk.ico"
  WriteRegStr HKCU "${UNINSTALL_KEY}" "InstallLocation" "$INSTDIR"
  WriteRegStr HKCU "${UNINSTALL_KEY}" "UninstallString" '"$INSTDIR\uninstall.exe"'
  WriteRegStr HKCU "${UNINSTALL_KEY}" "QuietUninstallString" '"$INSTDIR\uninstall.exe" /S'
  WriteRegStr HKCU "${UNINSTALL_KEY}" "URLInfoAbout" "https://github.com/llamadesk/llamadesk"
  WriteRegDWORD HKCU "${UNINSTALL_KEY}" "EstimatedSize" $0
  WriteRegDWORD HKCU "${UNINSTALL_KEY}" "NoModify" 1
  WriteRegDWORD HKCU "${UNINSTALL_KEY}" "NoRepair" 1
SectionEnd

Section "Uninstall"
  Delete "$SMPROGRAMS\${APP_NAME}.lnk"
  RMDir /r "$INSTDIR\_internal"
  Delete "$INSTDIR\${MAIN_EXE}"
  Delete "$INSTDIR\${CLI_EXE}"
  Delete "$INSTDIR\llamadesk.ico"
  Delete "$INSTDIR\uninstall.exe"
  RMDir "$INSTDIR"  ; only if empty: never deletes anything the installer did not put there
  DeleteRegKey HKCU "${UNINSTALL_KEY}"
  ; %LOCALAPPDATA%\LlamaDesk (history, settings, models) is the user's and stays.
SectionEnd
