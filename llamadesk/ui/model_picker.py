"""The toolbar's model picker: local models, then each endpoint's models, then the local models split over the RPC
cluster, and last "Get more models…" (the model manager); Load, load progress, what is loaded. Choosing another entry
switches the conversation's engine. Embedding and reranking models (known from their GGUF header, read in the
background) are left out: they cannot chat."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtGui import QStandardItem, QStandardItemModel
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QProgressBar, QPushButton, QWidget

from llamadesk.bundled import list_models
from llamadesk.core import rpc
from llamadesk.core.endpoints import Endpoint, EndpointStore, remote_options
from llamadesk.core.engines.api import GPU_LAYERS_ALL, LoadOptions, ModelInfo
from llamadesk.core.hub import quantization_of
from llamadesk.core.library import LocalModel, is_projector
from llamadesk.core.sampling import RANGES
from llamadesk.ui.model_choice import (
    Choice,
    ChoiceRole,
    ElidedLabel,
    PathRole,
    describe_loaded,
    human_size,
    remote_stand_in,
    same_choice,
)
from llamadesk.ui.workers import EngineHost, TaskContext, TaskRunner

GET_MORE = "Get more models…"
GetMoreRole = Qt.ItemDataRole.UserRole + 3  # marks the last entry, which opens the model manager


class ModelPicker(QWidget):
    """Choosing an entry loads it; Load shows only when loading would change something (another entry chosen, or
    another context length). Refresh reads the models folder and asks each endpoint for its models (the only
    network use here: the list is remembered otherwise). The last entry, "Get more models…", asks for the model
    manager (`getModelsRequested`) and goes back to the entry chosen before.

    It asks the engine thread for loads and tracks them: loads overlap when you pick another model while one
    loads (the first is cancelled), so results are matched to requests in order."""

    aboutToLoad = Signal(object)  # LocalModel (a stand-in for a remote model)
    modelLoaded = Signal(object, object)  # LocalModel | None, ModelInfo
    modelUnloaded = Signal()
    loadFailed = Signal(str)
    busyChanged = Signal(bool)
    getModelsRequested = Signal()  # the last entry, "Get more models…": the window opens File → Models…

    def __init__(
        self,
        host: EngineHost,
        models_dir: Path,
        options: Callable[[LocalModel], LoadOptions],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("modelPicker")
        self.host, self.models_dir, self._options = host, models_dir, options
        self.endpoints = EndpointStore()
        self.runner = TaskRunner(self, max_threads=2)  # model lists of endpoints; the Endpoints dialog's Test
        self._models: list[LocalModel] = []
        self._not_chat: dict[Path, str] = {}  # local files whose header says "embedding" or "reranking"
        self._choices: list[Choice] = []
        self._loading = False
        self._requested: list[tuple[Choice, int]] = []  # with the context length asked for
        self._loaded_n_ctx: int | None = None  # the context length the loaded model was asked for
        self._previous_row = 0  # the entry to go back to after "Get more models…"
        self.loaded_model: LocalModel | None = None
        self.loaded_choice: Choice | None = None
        self._done_n_ctx: int | None = None
        self.model_info: ModelInfo | None = None
        self.combo = QComboBox(self)
        # Choosing an entry loads a model (or opens the manager): the wheel passing over the list must not choose.
        self.combo.installEventFilter(self)
        self.combo.setObjectName("modelCombo")
        self.combo.setAccessibleName("Model")
        self.combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.combo.setMinimumContentsLength(24)
        self.combo.setMaximumWidth(460)
        self.combo.setMaxVisibleItems(20)
        self.load_button = QPushButton("Load", self)
        self.load_button.setObjectName("loadButton")
        self.load_button.setToolTip("Load the chosen model, with the current context length")
        self.refresh_button = QPushButton("Refresh", self)
        self.refresh_button.setObjectName("refreshModelsButton")
        self.refresh_button.setAccessibleName("Refresh the model list")
        self.refresh_button.setToolTip("Look for new model files in the models folder, and ask each endpoint for its "
                                       "models")  # fmt: skip
        self.progress = QProgressBar(self)
        self.progress.setObjectName("loadProgress")
        self.progress.setAccessibleName("Load progress")
        self.progress.setRange(0, 100)
        self.progress.setFixedWidth(120)
        self.progress.setTextVisible(True)
        self.progress.setFormat("Loading %p%")
        self.progress.hide()
        self.info_label = ElidedLabel("No model loaded", self)
        self.info_label.setObjectName("modelInfo")
        self.info_label.setMinimumWidth(120)

        layout = QHBoxLayout(self)
        layout.setContentsMargins(4, 2, 4, 2)
        layout.setSpacing(6)
        layout.addWidget(self.combo)
        layout.addWidget(self.load_button)
        layout.addWidget(self.refresh_button)
        layout.addWidget(self.progress)
        layout.addSpacing(8)
        layout.addWidget(self.info_label, 1)

        self.combo.activated.connect(self._on_activated)
        self.combo.currentIndexChanged.connect(self._on_current_changed)
        self.load_button.clicked.connect(self._on_load_clicked)
        self.refresh_button.clicked.connect(self.rescan)
        worker = host.worker
        worker.loadProgress.connect(self.set_progress)
        worker.loaded.connect(self._on_loaded)
        worker.loadFailed.connect(self._on_failed)
        worker.loadCancelled.connect(self._on_cancelled)
        worker.unloaded.connect(self._on_unloaded)
        self.set_models([], None, models_dir=None)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.combo and event.type() == QEvent.Type.Wheel:
            event.ignore()  # the toolbar scrolls nothing: the wheel simply does nothing here
            return True
        return super().eventFilter(watched, event)

    # --- loading -----------------------------------------------------------------------------------------------
    @property
    def is_loading(self) -> bool:
        return bool(self._requested)

    def load(self, model: LocalModel) -> None:
        """Loads a local model file in-process; the loaded model again as it was loaded (remote, RPC or local)."""
        loaded = self.loaded_choice
        self.load_choice(loaded if loaded is not None and loaded.model is model else Choice("local", model))

    def load_choice(self, choice: Choice) -> None:
        role = self._not_chat.get(choice.model.path) if choice.kind != "remote" else None
        if role is not None:  # a file dropped or chosen elsewhere; the list leaves them out
            self.loadFailed.emit(f"{choice.model.name} is {'an embedding' if role == 'embedding' else 'a reranking'} "
                                 "model, which cannot chat; use it in Documents → Search by meaning, and choose a "
                                 "chat model here.")  # fmt: skip
            return
        self.aboutToLoad.emit(choice.model)
        options = self.options_for(choice)
        self._requested.append((choice, options.n_ctx))
        self.host.load(options)
        self._set_busy()

    def options_for(self, choice: Choice) -> LoadOptions:
        options = self._options(choice.model)
        if choice.kind == "remote" and choice.endpoint is not None:
            return remote_options(choice.endpoint, choice.remote_model, n_ctx=options.n_ctx)
        if choice.kind == "rpc":
            return dataclasses.replace(options, rpc_servers=choice.hosts, n_gpu_layers=GPU_LAYERS_ALL)
        return options

    def cancel(self) -> None:
        self.host.cancel_load()

    def shutdown(self) -> None:
        self.runner.shutdown()

    def _done(self) -> Choice | None:
        choice, n_ctx = self._requested.pop(0) if self._requested else (None, None)
        self._done_n_ctx = n_ctx
        self._set_busy()
        return choice

    def _set_busy(self) -> None:
        if self.is_loading != self._loading:
            self.set_loading(self.is_loading)
            self.busyChanged.emit(self.is_loading)

    def _on_loaded(self, info: ModelInfo) -> None:
        requested = self._done()
        self.model_info = info
        choice: Choice | None
        if info.endpoint:
            endpoint = requested.endpoint if requested is not None else None
            choice = None
            if endpoint is not None:
                choice = Choice("remote", remote_stand_in(endpoint, info.file_name), endpoint, info.file_name)
                if info.file_name not in endpoint.models:
                    self.rescan_endpoints([endpoint])  # chosen before its models were listed: list them now
            self.loaded_model = choice.model if choice is not None else None
        else:
            local = self.model_for(info.path) or (requested.model if requested else None)
            self.loaded_model = local
            kind = "rpc" if info.rpc_servers else "local"
            choice = Choice(kind, local, hosts=tuple(info.rpc_servers)) if local is not None else None
        self.loaded_choice = choice
        self._loaded_n_ctx = self._done_n_ctx if self._done_n_ctx is not None else info.n_ctx
        if choice is not None and not self.is_loading:
            self._select_choice(choice)
        self.set_loaded(self.loaded_model, info)
        self.update_load_button()
        self.modelLoaded.emit(self.loaded_model, info)

    def _on_failed(self, message: str) -> None:
        requested = self._done()
        name = requested.model.name if requested else "The model"
        if self.loaded_choice is not None and not self.is_loading:
            self._select_choice(self.loaded_choice)  # the list shows what is loaded, not what failed
        self.loadFailed.emit(message or f"{name} could not be loaded.")

    def _on_cancelled(self) -> None:
        self._done()

    def _on_unloaded(self) -> None:
        self.model_info = None
        self.loaded_model = self.loaded_choice = None
        self._loaded_n_ctx = None
        self.set_loaded(None, None)
        self.update_load_button()
        self.modelUnloaded.emit()

    def refresh(self) -> None:
        """Reads the models folder, the endpoint list (with the models they listed last) and the RPC hosts,
        keeping the loaded (or chosen) entry selected. No network: see `rescan`."""
        current = self.loaded_choice or self.current_choice()
        found = [m for m in list_models(self.models_dir) if not is_projector(m.path)]  # a projector goes with its model
        chat = [m for m in found if m.path not in self._not_chat]
        self.set_models(chat, None, models_dir=self.models_dir)
        if current is not None:
            self._select_choice(current)
        self._sort_out([m.path for m in found])

    def _sort_out(self, paths: list[Path]) -> None:
        """Reads the files' headers in the background (the window's start imports no GGUF reader) and lists again
        without the embedding and reranking models, when they differ from those known."""
        from llamadesk.core.documents.embeddings import model_role

        def work(_ctx: TaskContext) -> dict[Path, str]:
            return {path: role for path in paths if (role := model_role(path)) != "chat"}

        def done(not_chat: dict[Path, str]) -> None:
            if not_chat != {p: r for p, r in self._not_chat.items() if p in paths}:
                self._not_chat = not_chat
                self.refresh()

        self.runner.run_in_background(work, done, lambda _sentence: None, name="sort out embedding models")

    def rescan(self) -> None:
        """Refresh: the models folder, then each endpoint's model list in the background."""
        self.refresh()
        self.rescan_endpoints(self.endpoints.endpoints())

    def rescan_endpoints(self, endpoints: Sequence[Endpoint]) -> None:
        from llamadesk.core.engines.remote_api import list_models as list_remote

        for endpoint in endpoints:

            def work(_ctx: TaskContext, endpoint: Endpoint = endpoint) -> tuple[str, tuple[str, ...]]:
                return endpoint.name, list_remote(endpoint).models

            self.runner.run_in_background(work, self._on_listed, self._on_list_failed, name="list endpoint models")

    def _on_listed(self, result: tuple[str, tuple[str, ...]]) -> None:
        self.endpoints.remember_models(*result)
        self.refresh()

    def _on_list_failed(self, message: str) -> None:
        self.loadFailed.emit(message)

    # --- the list ----------------------------------------------------------------------------------------------
    def set_models(self, models: Sequence[LocalModel], selected: Path | None, *, models_dir: Path | None) -> None:
        """Local models first (row i is models[i]), then the endpoints' models, then the RPC cluster's entries."""
        self._models = list(models)
        choices = [Choice("local", m) for m in self._models]
        remote = [] if models_dir is None else self.endpoints.endpoints()
        for endpoint in remote:
            for model_id in endpoint.models or ("",):
                choices.append(Choice("remote", remote_stand_in(endpoint, model_id), endpoint, model_id))
        hosts = rpc.load_hosts() if models_dir is not None else ()
        if hosts:
            choices += [Choice("rpc", m, hosts=hosts) for m in self._models]
        self._choices = choices
        self.combo.blockSignals(True)
        self.combo.clear()
        if not choices:
            where = f" in {models_dir}" if models_dir else ""
            self.combo.addItem("No models found")
            self._item(0).setEnabled(False)
            self.combo.setToolTip(f"Get more models…, or put .gguf files{where} and press Refresh; or add a server "
                                  "in File → Endpoints….")  # fmt: skip
        else:
            self.combo.setToolTip("Choosing a model loads it")
            previous = "local"
            for choice in choices:
                if choice.kind != previous:
                    self.combo.insertSeparator(self.combo.count())
                    previous = choice.kind
                self._add_item(choice)
                if selected is not None and choice.kind == "local" and choice.model.path == selected:
                    self.combo.setCurrentIndex(self.combo.count() - 1)
        self.combo.insertSeparator(self.combo.count())
        self.combo.addItem(GET_MORE)
        self.combo.setItemData(self.combo.count() - 1, GET_MORE, GetMoreRole)
        self.combo.setItemData(self.combo.count() - 1, "Find and download models (File → Models…, Ctrl+M)",
                               Qt.ItemDataRole.ToolTipRole)  # fmt: skip
        self._previous_row = self.combo.currentIndex()
        self.combo.blockSignals(False)
        self._update_buttons()

    def _item(self, row: int) -> QStandardItem:
        model = self.combo.model()
        assert isinstance(model, QStandardItemModel)  # QComboBox's own model
        item = model.item(row)
        assert item is not None
        return item

    def _is_get_more(self, row: int) -> bool:
        return self.combo.itemData(row, GetMoreRole) == GET_MORE

    def _add_item(self, choice: Choice) -> None:
        model = choice.model
        if choice.kind == "remote" and choice.endpoint is not None:
            ep = choice.endpoint
            label = f"{choice.remote_model} · {ep.name}" if choice.remote_model else f"{ep.name} · connect"
            tip = f"{choice.remote_model or 'The first model it offers'} on {ep.url} ({ep.kind} server)"
        else:
            label = f"{model.name} · {human_size(model.size_bytes)}"
            quant = quantization_of(model.path.name)
            if quant != "unknown" and quant.lower() not in model.name.lower():  # a catalog name does not say it
                label = f"{model.name} · {quant} · {human_size(model.size_bytes)}"
            if choice.kind == "rpc":
                label += f" · RPC cluster ({len(choice.hosts)} host{'s' if len(choice.hosts) != 1 else ''})"
                tip = f"{model.path}\nSplit over {', '.join(choice.hosts)}"
            else:
                label += f" · {model.license}" if model.license else ""
                tip = f"{model.path}\nSource: {model.source}"
        self.combo.addItem(label)
        i = self.combo.count() - 1
        self.combo.setItemData(i, str(model.path), PathRole)
        self.combo.setItemData(i, self._choices.index(choice), ChoiceRole)
        self.combo.setItemData(i, tip, Qt.ItemDataRole.ToolTipRole)

    def models(self) -> list[LocalModel]:
        """The local model files."""
        return list(self._models)

    def current_choice(self) -> Choice | None:
        index = self.combo.currentData(ChoiceRole)
        return self._choices[index] if isinstance(index, int) and 0 <= index < len(self._choices) else None

    def current_model(self) -> LocalModel | None:
        """The chosen local model file (None for an endpoint's model)."""
        choice = self.current_choice()
        return choice.model if choice is not None and choice.kind != "remote" else None

    def _select_choice(self, choice: Choice) -> bool:
        for row in range(self.combo.count()):
            index = self.combo.itemData(row, ChoiceRole)
            if isinstance(index, int) and same_choice(self._choices[index], choice):
                self.combo.setCurrentIndex(row)
                return True
        return False

    def select_path(self, path: Path) -> bool:
        return self._select_choice(Choice("local", LocalModel(path, "", 0, "", "", None)))

    def model_for(self, path: Path) -> LocalModel | None:
        return next((m for m in self._models if m.path == path), None)

    # --- loading state -----------------------------------------------------------------------------------------
    def set_loading(self, loading: bool) -> None:
        self._loading = loading
        self.progress.setVisible(loading)
        if loading:
            self.progress.setValue(0)
        self.load_button.setText("Cancel" if loading else "Load")
        self.load_button.setToolTip("Stop loading" if loading else "Load the chosen model")
        self._update_buttons()

    def set_progress(self, fraction: float) -> None:
        self.progress.setValue(max(0, min(100, round(fraction * 100))))

    def set_loaded(self, model: LocalModel | None, info: ModelInfo | None) -> None:
        if info is None:
            self.info_label.set_full_text("No model loaded")
            self.info_label.setToolTip("")
            return
        text = describe_loaded(model, info)
        self.info_label.set_full_text(text)
        if info.endpoint:
            tip = [text, info.endpoint, f"Context {info.n_ctx} tokens (as the server says, or as set here)"]
            from llamadesk.core.engines.remote_api import ACCEPTED, OPENAI_KEYS

            taken = ACCEPTED.get(info.server_kind, OPENAI_KEYS)
            ignored = [rng.label for name, rng in RANGES.items() if name not in taken]
            tip.append(
                "The server applies its own chat template"
                + (
                    f"; it ignores {', '.join(ignored)} (each reply's receipt lists what was ignored)"
                    if ignored
                    else ""
                )
            )
        else:
            tip = [text, str(info.path), f"Context {info.n_ctx} tokens (trained on {info.n_ctx_train})"]
            tip.append(f"Chat template: {info.template_name} ({info.template_source})")
            tip.append(f"{info.n_threads} threads, {info.n_gpu_layers} layers on the GPU")
            if info.rpc_servers:
                tip.append(f"RPC hosts: {rpc.split_text(info.layer_split) or ', '.join(info.rpc_servers)}")
        self.info_label.setToolTip("\n".join(tip))

    def update_load_button(self) -> None:
        """Load shows while loading the chosen entry would change something: another entry than the loaded one, or
        the loaded one with another context length. Call it when the context length changes."""
        self._update_buttons()

    def _update_buttons(self) -> None:
        choice = self.current_choice()
        self.load_button.setEnabled(self._loading or choice is not None)
        if self._loading:
            self.load_button.setVisible(True)
            return
        if choice is None:
            self.load_button.setVisible(False)
            return
        n_ctx = self.options_for(choice).n_ctx
        loaded = self.loaded_choice
        if loaded is not None and same_choice(loaded, choice):
            self.load_button.setVisible(n_ctx != self._loaded_n_ctx)
            self.load_button.setToolTip(f"Load {choice.model.name} again, with a context of {n_ctx} tokens "
                                        f"(loaded with {self._loaded_n_ctx})")  # fmt: skip
        else:
            self.load_button.setVisible(True)
            self.load_button.setToolTip(f"Load {choice.model.name}, with a context of {n_ctx} tokens")

    def _on_current_changed(self, row: int) -> None:
        if row >= 0 and not self._is_get_more(row):
            self._previous_row = row
        self._update_buttons()

    def _on_activated(self, index: int) -> None:
        if self._is_get_more(index):
            back = self._previous_row
            if self.loaded_choice is None or not self._select_choice(self.loaded_choice):
                self.combo.setCurrentIndex(back if 0 <= back < self.combo.count() and not self._is_get_more(back)
                                           else 0)  # fmt: skip
            self.getModelsRequested.emit()
            return
        choice = self.current_choice()
        if choice is not None:
            self.load_choice(choice)

    def _on_load_clicked(self) -> None:
        if self._loading:
            self.cancel()
            return
        choice = self.current_choice()
        if choice is not None:
            self.load_choice(choice)
