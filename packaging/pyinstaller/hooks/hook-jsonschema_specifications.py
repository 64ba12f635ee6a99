"""PyInstaller hook for jsonschema_specifications: the JSON meta-schemas that jsonschema checks a schema against
(core/structured.py, a response format's schema) are data files, read at import; without them in the bundle every
schema would fail. (pyinstaller-hooks-contrib may collect them too; this hook makes it certain.)
"""

from __future__ import annotations

from PyInstaller.utils.hooks import collect_data_files

datas = collect_data_files("jsonschema_specifications")
