"""The Downloads tab: every download with progress, speed, ETA, verification, and Pause / Resume / Cancel / Retry."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from llamadesk.core.downloads import DownloadJob, Progress, State
from llamadesk.core.hub import split_info
from llamadesk.ui.models.common import MessageLine, duration_text, human_size
from llamadesk.ui.models.download_manager import DownloadManager

STATE_WORDS = {
    State.QUEUED: "Not started",
    State.DOWNLOADING: "Downloading",
    State.PAUSED: "Paused",
    State.INTERRUPTED: "Interrupted — the partial file is kept",
    State.FAILED: "Failed",
    State.CANCELLED: "Cancelled",
    State.DONE: "Done",
}


# The window's words for a download that could not reach the Hub (the core's sentence says "try again"; here the
# Retry button beside it does that).
OFFLINE_TEXT = "Could not reach the Hugging Face Hub; LlamaDesk will resume the download when you press Retry."


def error_text(job: DownloadJob) -> str:
    """A failed job's one sentence, as this window words it."""
    if job.error_kind == "offline":
        return OFFLINE_TEXT
    return job.error or ""


def job_title(job: DownloadJob) -> str:
    """The model's readable name; the parts of a split model say which part they are."""
    name = job.display_name or job.label.removesuffix(".gguf")
    info = split_info(job.label)
    if info is not None:
        base = job.display_name or info[0]
        name = f"{base} — part {info[1]} of {info[2]}"
    return name


def verified_text(job: DownloadJob) -> str:
    """What was checked once a download is done."""
    if job.sha256 and job.etag and job.etag.strip('"').lower() == job.sha256.lower():
        return f"✓ Verified: sha256 {job.sha256[:12]}… matches the Hub's, GGUF header checked"
    return "✓ Size and GGUF header checked (the Hub publishes no sha256 for this file)"


class DownloadRow(QFrame):
    """One download: title, source, progress bar, a status line, the buttons that fit its state."""

    def __init__(self, manager: DownloadManager, job_id: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.manager, self.job_id = manager, job_id
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.title = QLabel()
        font = QFont(self.title.font())
        font.setBold(True)
        self.title.setFont(font)
        self.source = QLabel()
        self.source.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.source.setEnabled(False)  # the palette's muted text
        self.bar = QProgressBar()
        self.bar.setRange(0, 1000)
        self.bar.setTextVisible(True)
        self.status = QLabel()
        self.error = MessageLine()
        self.pause_button = QPushButton("Pause")
        self.resume_button = QPushButton("Resume")
        self.cancel_button = QPushButton("Cancel")
        self.retry_button = QPushButton("Retry")
        self.remove_button = QPushButton("Remove")
        self.remove_button.setToolTip("Remove from this list (a downloaded model stays in your library)")
        self.pause_button.clicked.connect(lambda: manager.pause(job_id))
        self.resume_button.clicked.connect(lambda: manager.start(job_id))
        self.retry_button.clicked.connect(lambda: manager.start(job_id))
        self.cancel_button.clicked.connect(lambda: manager.cancel(job_id))
        self.remove_button.clicked.connect(lambda: manager.remove(job_id))

        top = QHBoxLayout()
        top.addWidget(self.title, 1)
        for button in (
            self.pause_button,
            self.resume_button,
            self.retry_button,
            self.cancel_button,
            self.remove_button,
        ):
            top.addWidget(button)
        layout = QVBoxLayout(self)
        layout.setSpacing(4)
        layout.addLayout(top)
        layout.addWidget(self.source)
        layout.addWidget(self.bar)
        layout.addWidget(self.status)
        layout.addWidget(self.error)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)
        self.refresh()

    def refresh(self) -> None:
        job = self.manager.job(self.job_id)
        if job is None:
            return
        running, waiting = self.manager.is_running(job.id), self.manager.is_waiting(job.id)
        pausing = self.manager.is_pausing(job.id)
        self.title.setText(job_title(job))
        self.source.setText(f"{job.repo_id} · {job.filename}")
        self.source.setToolTip(f"Saved as {job.dest}")
        state = State.DOWNLOADING if running else job.state
        self.pause_button.setVisible(running or waiting)
        self.pause_button.setEnabled(not pausing)
        self.pause_button.setText("Pausing…" if pausing else "Pause")
        self.resume_button.setVisible(
            not running and not waiting and job.state in (State.PAUSED, State.INTERRUPTED, State.QUEUED)
        )
        self.retry_button.setVisible(not running and not waiting and job.state in (State.FAILED, State.CANCELLED))
        self.cancel_button.setVisible(running or waiting or state not in (State.DONE, State.FAILED, State.CANCELLED))
        self.cancel_button.setEnabled(not self.manager.is_cancelling(job.id))
        self.remove_button.setVisible(
            not running and not waiting and state in (State.DONE, State.FAILED, State.CANCELLED)
        )
        if job.error and job.state is State.FAILED and not running and not waiting:
            gated = "gated" in job.error or "token" in job.error
            self.error.show_error(
                error_text(job) + (" In this window: store the token in Settings, then Retry." if gated else "")
            )
        else:
            self.error.clear_message()
        progress = self.manager.progress(job.id)
        self._show_progress(job, progress, "Waiting for a free slot" if waiting else STATE_WORDS[state])

    def update_progress(self, p: Progress) -> None:
        job = self.manager.job(self.job_id)
        if job is not None:
            self._show_progress(job, p, STATE_WORDS[State.DOWNLOADING])

    def _show_progress(self, job: DownloadJob, p: Progress | None, words: str) -> None:
        total = (p.total if p else None) or job.size
        done = p.bytes_done if p and p.state is not State.CANCELLED else job.bytes_done
        idle = not self.manager.is_running(job.id) and not self.manager.is_waiting(job.id)
        self.bar.setVisible(not (idle and job.state in (State.FAILED, State.CANCELLED)))
        if idle and job.state is State.DONE:
            self.bar.setValue(1000)
            self.bar.setFormat("100%")
            self.status.setText(f"Done · {human_size(done or total or 0)} · {verified_text(job)}")
            return
        if idle and job.state in (State.FAILED, State.CANCELLED):
            self.status.setText(words + (" — the partial file was deleted" if job.state is State.CANCELLED else ""))
            return
        if total:
            self.bar.setRange(0, 1000)
            self.bar.setValue(int(1000 * min(1.0, done / total)))
            self.bar.setFormat(f"{100 * done / total:.0f}%")
            amount = f"{human_size(done)} of {human_size(total)}"
        else:
            self.bar.setValue(0)
            self.bar.setFormat("")
            amount = human_size(done) if done else ""
        parts = [words]
        if amount:
            parts.append(amount)
        if self.manager.is_running(job.id) and p is not None:
            if p.speed > 0:
                parts.append(f"{human_size(int(p.speed))}/s")
            if p.eta is not None:
                parts.append(f"{duration_text(p.eta)} left")
            if p.note:
                parts.append(p.note)
        self.status.setText(" · ".join(parts))


class DownloadsPage(QWidget):
    """Lists every job of the persistent queue, also those from before a restart."""

    def __init__(self, manager: DownloadManager, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.manager = manager
        self.rows: dict[str, DownloadRow] = {}
        self.summary = QLabel()
        self.resume_all_button = QPushButton("Resume all")
        self.resume_all_button.setToolTip("Continue every paused or interrupted download where it stopped")
        self.clear_button = QPushButton("Clear finished")
        self.resume_all_button.clicked.connect(manager.resume_all)
        self.clear_button.clicked.connect(self._clear_finished)
        self.empty = QLabel("No downloads yet. Pick a model in the Catalog or on the Hub and press Download.")
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty.setEnabled(False)
        self.message = MessageLine()

        self._list = QWidget()
        self._list_layout = QVBoxLayout(self._list)
        self._list_layout.setContentsMargins(0, 0, 0, 0)
        self._list_layout.addWidget(self.empty)
        self._list_layout.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(self._list)

        header = QHBoxLayout()
        header.addWidget(self.summary, 1)
        header.addWidget(self.resume_all_button)
        header.addWidget(self.clear_button)
        layout = QVBoxLayout(self)
        layout.addLayout(header)
        layout.addWidget(scroll, 1)
        layout.addWidget(self.message)

        manager.jobsChanged.connect(self._rebuild)
        manager.jobChanged.connect(self._job_changed)
        manager.progressed.connect(self._progressed)
        manager.message.connect(self.message.show_error)
        self._rebuild()

    def _rebuild(self) -> None:
        jobs = self.manager.jobs()
        wanted = {j.id for j in jobs}
        for job_id in [k for k in self.rows if k not in wanted]:
            row = self.rows.pop(job_id)
            self._list_layout.removeWidget(row)
            row.deleteLater()
        for i, job in enumerate(reversed(jobs)):  # newest first
            found = self.rows.get(job.id)
            row = found if found is not None else DownloadRow(self.manager, job.id)
            self.rows[job.id] = row
            self._list_layout.insertWidget(i, row)
            row.refresh()
        self._update_summary()

    def _job_changed(self, job_id: str) -> None:
        row = self.rows.get(job_id)
        if row is None:
            self._rebuild()
            return
        row.refresh()
        self._update_summary()

    def _progressed(self, p: Progress) -> None:
        row = self.rows.get(p.job_id)
        if row is not None:
            row.update_progress(p)

    def _update_summary(self) -> None:
        jobs = self.manager.jobs()
        active = self.manager.active_count()
        resumable = len(self.manager.resumable())
        self.empty.setVisible(not jobs)
        bits = [f"{len(jobs)} download{'s' if len(jobs) != 1 else ''}"]
        if active:
            bits.append(f"{active} active")
        if resumable:
            bits.append(f"{resumable} paused or interrupted")
        self.summary.setText(" · ".join(bits) if jobs else "")
        self.resume_all_button.setVisible(resumable > 0)
        self.clear_button.setVisible(
            any(j.state in (State.DONE, State.CANCELLED) and not self.manager.is_running(j.id) for j in jobs)
        )

    def _clear_finished(self) -> None:
        for job in self.manager.jobs():
            if job.state in (State.DONE, State.CANCELLED) and not self.manager.is_running(job.id):
                self.manager.remove(job.id)
