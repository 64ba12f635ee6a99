"""What earlier comparisons measured for a file, by its SHA-256, in one line for the Catalog and Hub pages."""

from __future__ import annotations

from llamadesk.core import quality


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
