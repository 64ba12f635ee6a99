"""What an embedding model wants written before a search query and before a passage it embeds.

Several embedding models were trained with a task prefix and give poorer vectors without it: nomic-embed-text wants
"search_query: " and "search_document: ", EmbeddingGemma "task: search result | query: " and "title: none | text: ",
and BGE's English v1.5 models want an instruction before a short query (and nothing before a passage). A GGUF does
not carry them (llama.cpp's converter writes no such key), so they are known here, per catalog entry, and found for a
model file by the catalog's file names first, then by what its header says (architecture, general.name).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Prefixes:
    query: str = ""
    document: str = ""


NONE = Prefixes()
NOMIC = Prefixes("search_query: ", "search_document: ")  # nomic-embed-text v1/v1.5 model card
GEMMA = Prefixes("task: search result | query: ", "title: none | text: ")  # EmbeddingGemma model card
BGE_EN = Prefixes("Represent this sentence for searching relevant passages: ", "")  # bge-*-en-v1.5 model card

# (catalog family id, size id) → prefixes; entries of the catalog's embedding models that need none are left out.
BY_CATALOG: dict[tuple[str, str], Prefixes] = {
    ("nomic-embed-text", "v1.5"): NOMIC,
    ("bge", "small-en-v1.5"): BGE_EN,
    ("bge", "base-en-v1.5"): BGE_EN,
    ("embeddinggemma", "300m"): GEMMA,
}
BY_ARCHITECTURE = {"nomic-bert": NOMIC, "nomic-bert-moe": NOMIC, "gemma-embedding": GEMMA}
_BGE_EN = re.compile(r"bge-(small|base|large)-en", re.IGNORECASE)


def from_catalog(file_name: str) -> Prefixes | None:
    """The prefixes of the catalog entry that lists this file name; None when no entry lists it."""
    from llamadesk.core.catalog import CatalogError, load_catalog

    try:
        entries = load_catalog().entries()
    except CatalogError:
        return None
    lowered = file_name.lower()
    for family, size, quant in entries:
        if size.kind == "embedding" and lowered in (f.lower() for f in quant.files):
            return BY_CATALOG.get((family.id, size.id), NONE)
    return None


def from_header(architecture: str, name: str | None, file_name: str) -> Prefixes:
    """The prefixes a model needs by its architecture or its name (general.name, else the file's name)."""
    if architecture in BY_ARCHITECTURE:
        return BY_ARCHITECTURE[architecture]
    if any(_BGE_EN.search(text or "") for text in (name, file_name)):
        return BGE_EN
    return NONE


def prefixes_for(path: Path, architecture: str, name: str | None) -> Prefixes:
    """The prefixes for the model file at `path`, whose header declares `architecture` and `name`."""
    found = from_catalog(path.name)
    return found if found is not None else from_header(architecture, name, path.name)
