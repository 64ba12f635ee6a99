"""What earlier comparisons measured for a file, by its SHA-256, in one line for the Catalog and Hub pages."""

from __future__ import annotations

from collections.abc import Iterable

from llamadesk.core import quality
from llamadesk.core.catalog import Quantization
from llamadesk.core.download_queue import DownloadJob, State


def measured_note(sha256: str | None) -> str:
    """A line such as "Measured here: 97.1% of F16's top tokens, KLD 0.0123, perplexity 12.34, 41.2 tokens/s" (the
    newest measurement), or "" when this file was never measured on this machine."""
    if not sha256:
        return ""
    results = quality.stored_results(sha256.lower())
    if not results:
        return ""
    r = results[0]
    try:
        if r.get("is_reference"):
            head = f"Measured here as the reference: perplexity {float(r['perplexity']):.2f}"
        else:
            head = (
                f"Measured here: {float(r['top1']):.1%} of {r.get('reference_type', 'the reference')}'s top "
                f"tokens, KLD {float(r['kld']):.4f}, perplexity {float(r['perplexity']):.2f}"
            )
        speed = f", {float(r['gen_tps']):.1f} tokens/s" if r.get("gen_tps") else ""
    except (KeyError, TypeError, ValueError):  # an entry from an older or damaged file: say nothing rather than fail
        return ""
    more = f" ({len(results)} measurements; the newest)" if len(results) > 1 else ""
    return f"{head}{speed}{more}."


def catalog_sha256(quant: Quantization, jobs: Iterable[DownloadJob]) -> str | None:
    """The SHA-256 of a catalog quantization: as the catalog records it, else as its finished download verified it
    (the catalog ships without hashes; a file you downloaded has one). None for a split model."""
    if len(quant.files) != 1:
        return None
    if quant.sha256 and quant.sha256[0]:
        return quant.sha256[0]
    for job in jobs:
        if job.repo_id.lower() == quant.repo.lower() and job.filename == quant.files[0] and job.state is State.DONE:
            return job.sha256
    return None
