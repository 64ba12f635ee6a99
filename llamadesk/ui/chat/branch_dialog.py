"""The conversation's branches as a tree: pick any message and its branch becomes the one shown."""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, Qt, Signal
from PySide6.QtGui import QStandardItem, QStandardItemModel
from PySide6.QtWidgets import QAbstractItemView, QDialog, QDialogButtonBox, QLabel, QTreeView, QVBoxLayout, QWidget

from llamadesk.core.conversation.tree import OutlineNode, Tree, outline, snippet

MessageIdRole = Qt.ItemDataRole.UserRole + 1
GroupRole = Qt.ItemDataRole.UserRole + 2  # an "Alternative 2 of 3" line: choosing it shows that alternative


class BranchDialog(QDialog):
    """A QTreeView of the outline; the branch shown is in bold and its last message selected."""

    branchChosen = Signal(int)  # a message id: show the (newest) branch through it

    def __init__(self, tree: Tree, leaf: int | None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("branchDialog")
        self.setWindowTitle("Branches")
        self.setAccessibleName("Branches of the conversation")
        self.resize(620, 520)
        self._shown = {m.id for m in tree.branch(leaf)}
        self.model = QStandardItemModel(self)
        self.view = QTreeView(self)
        self.view.setObjectName("branchTree")
        self.view.setAccessibleName("Branch tree")
        self.view.setHeaderHidden(True)
        self.view.setUniformRowHeights(True)
        self.view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.view.setModel(self.model)
        self.leaf_item = self._fill(outline(tree), leaf)
        self.view.expandAll()
        if self.leaf_item is not None:
            index = self.leaf_item.index()
            self.view.setCurrentIndex(index)
            self.view.scrollTo(index, QAbstractItemView.ScrollHint.PositionAtCenter)
        hint = QLabel("Bold: the branch shown. Choose a message and press Enter to show its branch.", self)
        hint.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        self.show_button = buttons.addButton("Show this branch", QDialogButtonBox.ButtonRole.AcceptRole)
        self.show_button.setAccessibleName("Show this branch")
        self.show_button.setDefault(True)
        buttons.accepted.connect(self.choose_current)
        buttons.rejected.connect(self.reject)
        self.view.activated.connect(self._activated)
        layout = QVBoxLayout(self)
        layout.addWidget(self.view, 1)
        layout.addWidget(hint)
        layout.addWidget(buttons)
        self.view.setFocus()

    def _fill(self, nodes: list[OutlineNode], leaf: int | None) -> QStandardItem | None:
        """Adds the outline without recursion ((parent item, nodes) pairs on a stack); returns the leaf's line."""
        found: QStandardItem | None = None
        root = self.model.invisibleRootItem()
        stack: list[tuple[QStandardItem, list[OutlineNode]]] = [(root, nodes)]
        while stack:
            parent, group = stack.pop()
            for node in group:
                item = self._item(node)
                if node.message.id == leaf:
                    found = item
                parent.appendRow(item)
                for label, children in node.alternatives:
                    branch = QStandardItem(label)
                    first = children[0].message.id if children else None
                    branch.setData(first, MessageIdRole)
                    branch.setData(True, GroupRole)
                    branch.setToolTip("Show the branch that starts here")
                    if first in self._shown:
                        font = branch.font()
                        font.setBold(True)
                        branch.setFont(font)
                    item.appendRow(branch)
                    stack.append((branch, children))
        return found

    def _item(self, node: OutlineNode) -> QStandardItem:
        message = node.message
        item = QStandardItem(snippet(message))
        item.setData(message.id, MessageIdRole)
        item.setToolTip(message.content[:1000])
        if message.id in self._shown:
            font = item.font()
            font.setBold(True)
            item.setFont(font)
        return item

    def find_item(self, message_id: int) -> QStandardItem | None:
        """The line of a message (not of the alternative group it starts)."""
        matches = self.model.match(
            self.model.index(0, 0), MessageIdRole, message_id, -1,
            Qt.MatchFlag.MatchExactly | Qt.MatchFlag.MatchRecursive,
        )  # fmt: skip
        lines = [m for m in matches if not m.data(GroupRole)]
        return self.model.itemFromIndex(lines[0]) if lines else None

    def _activated(self, index: QModelIndex) -> None:
        self.view.setCurrentIndex(index)
        self.choose_current()

    def choose_current(self) -> None:
        mid = self.view.currentIndex().data(MessageIdRole)
        if isinstance(mid, int):
            self.branchChosen.emit(mid)
            self.accept()
