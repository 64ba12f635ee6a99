"""PySide6 widgets of LlamaDesk: the only package that imports Qt."""
