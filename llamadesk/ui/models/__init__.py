"""The model manager: catalog, Hub browser, downloads and the local library."""

from llamadesk.ui.models.dialog import ModelManagerDialog

__all__ = ["ModelManagerDialog"]
