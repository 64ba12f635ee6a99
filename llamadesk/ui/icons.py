"""Icons from the platform's theme (freedesktop names on Linux, the system's own on Windows and macOS through Qt's
theme engines), with Qt's bundled standard icons as the fallback where a theme has none. No icon files of our own:
Qt ships a fallback for every name used here, in the frozen app too."""

from __future__ import annotations

from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication, QStyle

Theme = QIcon.ThemeIcon
Std = QStyle.StandardPixmap

# What each action of the window shows: the theme's icon first, then Qt's own.
ICONS: dict[str, tuple[QIcon.ThemeIcon, QStyle.StandardPixmap]] = {
    "new_chat": (Theme.DocumentNew, Std.SP_FileIcon),
    "quit": (Theme.ApplicationExit, Std.SP_DialogCloseButton),
    "find": (Theme.EditFind, Std.SP_FileDialogContentsView),
    "regenerate": (Theme.ViewRefresh, Std.SP_BrowserReload),
    "settings": (Theme.DocumentProperties, Std.SP_FileDialogDetailedView),
    "about": (Theme.HelpAbout, Std.SP_MessageBoxInformation),
    "export": (Theme.DocumentSaveAs, Std.SP_DialogSaveButton),
    "open": (Theme.DocumentOpen, Std.SP_DialogOpenButton),
}


def icon(name: str) -> QIcon:
    """The icon for `name` (a key of ICONS): the platform theme's when it has one, else Qt's bundled one."""
    theme, fallback = ICONS[name]
    if QIcon.hasThemeIcon(theme):
        return QIcon.fromTheme(theme)
    style = QApplication.style()
    return style.standardIcon(fallback) if style is not None else QIcon()
