"""The curated catalog (assets/catalog.json): family → size → quantization, with sizes and a fit for each."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from llamadesk.core.errors import LlamaDeskError
from llamadesk.core.fit import FitEstimate, ModelShape, Verdict, estimate
from llamadesk.core.hub import check_remote_name, check_repo_id
from llamadesk.paths import resource_path

# From smallest to largest file: the order the user picks in.
QUANT_ORDER = ("Q2_K", "Q3_K_S", "Q3_K_M", "Q3_K_L", "IQ4_XS", "Q4_0", "Q4_1", "Q4_K_S", "Q4_K_M", "Q5_0", "Q5_1",
               "Q5_K_S", "Q5_K_M", "Q6_K", "Q8_0", "BF16", "F16", "F32")


class CatalogError(LlamaDeskError):
    """The catalog file is missing or malformed (a packaging bug), or an entry was not found."""


@dataclass(frozen=True)
class Quantization:
    name: str
    repo: str
    files: tuple[str, ...]  # several for a split model, first part first
    size_bytes: int
    size_approx: bool
    sha256: tuple[str | None, ...]  # one per file; None where not recorded

    @property
    def ref(self) -> str:
        """What `llamadesk models download` takes: REPO:FILE (the first part for a split model)."""
        return f"{self.repo}:{self.files[0]}"


@dataclass(frozen=True)
class ShapeInfo:
    n_layers: int
    n_embd: int
    n_head: int
    n_head_kv: int
    head_dim: int
    n_vocab: int


@dataclass(frozen=True)
class DraftRef:
    """A smaller size of the same family (the same vocabulary) that drafts tokens for a size (engines/draft.py)."""

    size: str
    quantization: str


# llama.cpp's speculative decoding accepts vocabularies that differ by at most this many (padding) tokens
# (SPEC_VOCAB_MAX_SIZE_DIFFERENCE): Qwen2.5 0.5B has 151,936 and 7B 152,064, the same tokens otherwise.
DRAFT_VOCAB_SLACK = 128


@dataclass(frozen=True)
class Size:
    id: str
    label: str
    params: int
    context_length: int
    kind: str  # "base" or "instruct"
    architecture: str
    license: str
    shape: ShapeInfo
    quantizations: tuple[Quantization, ...]
    draft: DraftRef | None = None

    def quantization(self, name: str) -> Quantization:
        for q in self.quantizations:
            if q.name.lower() == name.lower():
                return q
        raise CatalogError(f"{self.label} has no {name} file in the catalog; choose one of "
                           f"{', '.join(q.name for q in self.quantizations)}.")

    @property
    def is_chat(self) -> bool:
        """An instruct model: it follows a chat. A base model only continues text; an embedding model serves search."""
        return self.kind == "instruct"

    @property
    def kind_label(self) -> str:
        """The kind in words a newcomer reads in the catalog."""
        return KIND_LABELS.get(self.kind, self.kind)

    def model_shape(self, quant: Quantization) -> ModelShape:
        s = self.shape
        return ModelShape.approximate(n_layers=s.n_layers, n_embd=s.n_embd, n_head=s.n_head, n_head_kv=s.n_head_kv,
                                      head_dim=s.head_dim, n_vocab=s.n_vocab, n_ctx_train=self.context_length,
                                      weights_bytes=quant.size_bytes)

    def fits(
        self, n_ctx: int, *, ram_free: int, vram_free: int = 0, draft: tuple[Size, Quantization] | None = None
    ) -> list[tuple[Quantization, FitEstimate]]:
        """Every quantization with its verdict at `n_ctx` (capped at the trained context); with `draft` (what
        Family.draft_of gives) the draft model loaded beside it counts too."""
        n_ctx = min(n_ctx, self.context_length)
        beside = draft[0].model_shape(draft[1]) if draft else None
        return [(q, estimate(self.model_shape(q), n_ctx, ram_free=ram_free, vram_free=vram_free, draft=beside))
                for q in self.quantizations]


KIND_LABELS = {"instruct": "chat", "base": "base model, not for chat", "embedding": "embedding, for documents"}
RECOMMENDED = "Q4_K_M"  # the usual balance of quality and size


def recommended_quant(size: Size, fits: list[tuple[Quantization, FitEstimate]]) -> str | None:
    """The quantization to mark "recommended": Q4_K_M when it fits, else the largest smaller one that runs at all.
    A base model is never recommended: it continues text and does not follow a chat."""
    if size.kind == "base":
        return None
    names = {q.name: e for q, e in fits}
    if RECOMMENDED in names and names[RECOMMENDED].verdict is not Verdict.TOO_LARGE:
        return RECOMMENDED
    order = [q.name for q, _ in fits]
    cut = order.index(RECOMMENDED) if RECOMMENDED in order else len(order)
    usable = [q.name for q, e in fits[:cut] if e.verdict is not Verdict.TOO_LARGE]
    return usable[-1] if usable else None


@dataclass(frozen=True)
class Family:
    id: str
    name: str
    publisher: str
    license: str
    description: str
    sizes: tuple[Size, ...]

    def size(self, size_id: str) -> Size:
        for s in self.sizes:
            if s.id.lower() == size_id.lower():
                return s
        raise CatalogError(f"{self.name} has no size '{size_id}'; choose one of "
                           f"{', '.join(s.id for s in self.sizes)}.")

    def draft_of(self, size: Size) -> tuple[Size, Quantization] | None:
        """The size and file that draft tokens for `size` (speculative decoding), if the catalog pairs one."""
        if size.draft is None:
            return None
        draft = self.size(size.draft.size)
        return draft, draft.quantization(size.draft.quantization)

    @property
    def is_chat(self) -> bool:
        return any(s.is_chat for s in self.sizes)

    @property
    def is_base_only(self) -> bool:
        return all(s.kind == "base" for s in self.sizes)

    @property
    def list_name(self) -> str:
        """The name in the catalog's list; a family of base models says so there, not only in its description."""
        return f"{self.name} — base, not chat" if self.is_base_only else self.name


@dataclass(frozen=True)
class Catalog:
    families: tuple[Family, ...]
    notes: str = ""

    def family(self, family_id: str) -> Family:
        for f in self.families:
            if f.id.lower() == family_id.lower():
                return f
        raise CatalogError(f"The catalog has no family '{family_id}'.")

    def browse_order(self) -> tuple[Family, ...]:
        """The order the catalog is shown in: chat models first, then embedding models, base models last (they only
        continue text, and a newcomer who picks one first gets nonsense for an answer)."""
        rank = {True: 0, False: 1}
        return tuple(sorted(self.families, key=lambda f: (2 if f.is_base_only else rank[f.is_chat])))

    def entries(self) -> list[tuple[Family, Size, Quantization]]:
        return [(f, s, q) for f in self.families for s in f.sizes for q in s.quantizations]

    def find_file(self, repo: str, filename: str) -> tuple[Family, Size, Quantization] | None:
        """The catalog entry for a Hub file, to name a download and record its license."""
        for f, s, q in self.entries():
            if q.repo.lower() == repo.lower() and filename in q.files:
                return f, s, q
        return None


def _quant(data: dict[str, Any]) -> Quantization:
    files = tuple(check_remote_name(f) for f in data["files"])
    sha = data.get("sha256")
    hashes: tuple[str | None, ...] = tuple(sha) if isinstance(sha, list) else (sha,) + (None,) * (len(files) - 1)
    return Quantization(str(data["name"]), check_repo_id(data["repo"]), files, int(data["size_bytes"]),
                        bool(data.get("size_approx", True)), hashes)


def _size(data: dict[str, Any], family_license: str) -> Size:
    shape = ShapeInfo(**{k: int(v) for k, v in data["shape"].items()})
    quants = sorted((_quant(q) for q in data["quantizations"]),
                    key=lambda q: QUANT_ORDER.index(q.name) if q.name in QUANT_ORDER else len(QUANT_ORDER))
    draft = DraftRef(str(data["draft"]["size"]), str(data["draft"]["quantization"])) if "draft" in data else None
    return Size(str(data["id"]), str(data["label"]), int(data["params"]), int(data["context_length"]),
                str(data["kind"]), str(data["architecture"]), str(data.get("license") or family_license), shape,
                tuple(quants), draft)


def _check_drafts(family: Family) -> None:
    """A draft is a smaller size of the same family with (nearly) the same vocabulary, in a file the catalog has."""
    for size in family.sizes:
        pair = family.draft_of(size)  # CatalogError when the size or file is not there
        if pair is None:
            continue
        draft = pair[0]
        if draft.params >= size.params or abs(draft.shape.n_vocab - size.shape.n_vocab) > DRAFT_VOCAB_SLACK:
            raise CatalogError(f"{family.name} {size.label}: its draft {draft.label} is not a smaller model with "
                               "the same vocabulary; reinstall LlamaDesk.")


def parse_catalog(data: dict[str, Any]) -> Catalog:
    try:
        families = tuple(
            Family(str(f["id"]), str(f["name"]), str(f["publisher"]), str(f["license"]),
                   str(f.get("description", "")), tuple(_size(s, str(f["license"])) for s in f["sizes"]))
            for f in data["families"]
        )
        for family in families:
            _check_drafts(family)
    except (KeyError, TypeError, ValueError) as exc:
        raise CatalogError(f"The model catalog is malformed ({type(exc).__name__}: {exc}); reinstall LlamaDesk.") \
            from exc
    return Catalog(families, str(data.get("notes", "")))


def catalog_path() -> Path:
    return resource_path("catalog.json")


@cache
def _load(path: Path) -> Catalog:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CatalogError(f"The model catalog {path} could not be read ({exc}); reinstall LlamaDesk.") from exc
    return parse_catalog(data)


def load_catalog(path: Path | None = None) -> Catalog:
    """The shipped catalog (parsed once per process), or the one at `path`."""
    return _load((path or catalog_path()).resolve())


# --- the welcome page's three suggestions ------------------------------------------------------------------------
# Decoding reads every weight once per token and a desktop's memory moves about 50 GB/s, so without a GPU a model
# with more than ~9 GB of weights answers at under ~5 words a second: "best that fits" stops there on a CPU.
CPU_WEIGHTS_LIMIT = 9_000_000_000
MIN_PICK_PARAMS = 900_000_000  # smaller chat models do little more than the starter model already does
PICK_LABELS = ("fast, basic", "balanced", "best that fits")


@dataclass(frozen=True)
class Pick:
    """One suggestion: a chat model's quantization that fits this machine, with its plain-words label."""

    label: str
    family: Family
    size: Size
    quant: Quantization
    fit: FitEstimate

    @property
    def name(self) -> str:
        return f"{self.family.name} {self.size.label}"


def welcome_picks(catalog: Catalog, *, ram_free: int, vram_free: int = 0, n_ctx: int = 4096) -> list[Pick]:
    """Up to three chat models that fit: the smallest useful one ("fast, basic"), the largest that fits (and, on a
    CPU alone, still answers at reading speed: "best that fits"), and the one halfway between on a log scale
    ("balanced"). Fewer when fewer fit; none when nothing does."""
    order = {f.id: i for i, f in enumerate(catalog.browse_order())}
    candidates: list[tuple[Family, Size, Quantization, FitEstimate]] = []
    for family in catalog.browse_order():
        for size in family.sizes:
            if not size.is_chat or size.params < MIN_PICK_PARAMS:
                continue
            fits = size.fits(n_ctx, ram_free=ram_free, vram_free=vram_free)
            # Q4_K_M only: a smaller quantization of a larger model is not what a newcomer should start with.
            chosen = next(((q, e) for q, e in fits if q.name == RECOMMENDED), None)
            if chosen is None or chosen[1].verdict is Verdict.TOO_LARGE:
                continue
            if vram_free <= 0 and chosen[0].size_bytes > CPU_WEIGHTS_LIMIT:
                continue
            candidates.append((family, size, *chosen))
    if not candidates:
        return []
    candidates.sort(key=lambda c: (c[1].params, order[c[0].id]))
    best = max(candidates, key=lambda c: (c[1].params, -order[c[0].id]))
    fast = candidates[0]
    picks = [fast] if fast is not best else []
    middle = [c for c in candidates if c is not fast and c is not best and c[1].params != best[1].params]
    if middle and picks:
        target = math.sqrt(fast[1].params * best[1].params)
        picks.append(min(middle, key=lambda c: (abs(math.log(c[1].params / target)), order[c[0].id])))
    picks.append(best)
    labels = PICK_LABELS[-len(picks):] if len(picks) < 3 else PICK_LABELS
    if len(picks) == 2:
        labels = (PICK_LABELS[0], PICK_LABELS[2])
    return [Pick(label, f, s, q, e) for label, (f, s, q, e) in zip(labels, picks, strict=True)]
