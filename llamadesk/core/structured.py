"""Structured output: a response format (text, any JSON object, a JSON schema) → the llama.cpp grammar that holds
every reply to it, so that a reply always parses (and, under a schema, validates).

The schema → GBNF conversion is llama-cpp-python's own (`llama_cpp.llama_grammar.SchemaConverter`, a port of
llama.cpp's json_schema_to_grammar.py). That converter trusts its input, so a schema is checked here first:
- it *writes out* every bounded repetition: `maxLength: 10**9` (or `minItems`, or a pattern's `{n,m}`) becomes a
  rule text with 10**9 copies of the item — gigabytes and minutes — and llama.cpp's recursive-descent grammar
  parser then recurses once per nested copy (a deep enough rule overflows the C stack and kills the process);
- a recursive `$ref` comes out as a left-recursive rule (llama.cpp refuses it) or as a grammar no finite reply can
  complete;
- it recurses in Python per nesting level (RecursionError), and an enum of 10k values becomes 10k alternatives that
  llama.cpp's grammar sampler tries against every token of the vocabulary at every step (a crawl, not a reply);
- its errors are bare `assert`s and KeyErrors;
- it silently ignores keywords a grammar cannot express (minimum, multipleOf, uniqueItems, ...), so a reply could
  parse and still fail the schema.
So the bounds below are checked before converting (each refusal one sentence), the schema itself is validated with
`jsonschema` against its meta-schema, and keywords the grammar cannot enforce are refused rather than ignored.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from enum import Enum
from typing import Any

from llamadesk.core.errors import StructuredOutputError

MAX_SCHEMA_CHARS = 200_000  # a schema's JSON text
MAX_DEPTH = 32  # objects and arrays nested in the schema's JSON
MAX_NODES = 5_000  # objects and arrays in the schema's JSON
MAX_ENUM = 500  # values of one enum: each is an alternative the sampler tries at every token
MAX_ENUM_TOTAL = 2_000  # enum values in the whole schema
MAX_LENGTH = 1_000  # minLength / maxLength of a string: written out as that many nested rules
MAX_ITEMS = 100  # minItems / maxItems of an array: likewise
MAX_REPEAT = 1_000  # a pattern's {n} / {n,m}
MAX_GRAMMAR_CHARS = 2_000_000  # the grammar text after conversion (belt and braces: the bounds above keep it small)
FORMAT_KEY = "response_format"  # where a conversation's sampling JSON keeps its format (ResponseFormat.to_dict)
RECEIPT_SCHEMA_CHARS = 8_000  # a schema up to this size is copied into each reply's receipt; a larger one by hash

# Keywords that constrain values in ways llama.cpp's grammar (as the converter writes it) does not enforce.
UNENFORCED = (
    "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "not", "if", "then", "else",
    "uniqueItems", "contains", "minContains", "maxContains", "patternProperties", "propertyNames",
    "minProperties", "maxProperties", "dependentRequired", "dependentSchemas", "dependencies",
    "unevaluatedProperties", "unevaluatedItems",
)  # fmt: skip
# Where a schema holds subschemas: keyword → how (one schema, a list of them, or a name → schema map).
_ONE, _LIST, _MAP = "one", "list", "map"
# The converter's own `char` (a string's character) and `dot` (a pattern's ".") admit control characters, and `dot`
# a quote too: a reply could then hold a raw newline or \x0c in a string (invalid JSON), or close its string early;
# and since llama.cpp reads a stray byte of broken UTF-8 as code point 0, `[^"\\]` let those through as well.
# These are JSON's own rules for a string's character (as llama.cpp's JSON_GBNF writes them).
_JSON_CHAR = r'[^"\\\x7F\x00-\x1F] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F] [0-9a-fA-F] [0-9a-fA-F] [0-9a-fA-F])'
_RULE_FIXES = {"char": _JSON_CHAR, "dot": r'[^"\\\x7F\x00-\x1F]'}
_SUBSCHEMAS = {
    "properties": _MAP, "$defs": _MAP, "definitions": _MAP, "items": _ONE, "prefixItems": _LIST,
    "additionalProperties": _ONE, "anyOf": _LIST, "oneOf": _LIST, "allOf": _LIST,
}  # fmt: skip


class FormatKind(str, Enum):
    TEXT = "text"  # no constraint
    JSON = "json_object"  # any JSON object
    SCHEMA = "json_schema"  # JSON valid under a schema


@dataclass(frozen=True)
class ResponseFormat:
    """What a reply must be. Immutable and picklable (it crosses to the engine's thread and the RPC child); the
    schema is kept as JSON text, its properties in their order (the model writes them in that order).
    `json_object()`, `from_schema()` and `from_openai()` check the schema at once; one built directly (the window
    keeps a schema as typed) is checked by `check()`, which the engines call."""

    kind: FormatKind = FormatKind.TEXT
    schema_json: str = ""
    name: str = ""
    strict: bool = False

    @classmethod
    def text(cls) -> ResponseFormat:
        return cls()

    @classmethod
    def json_object(cls) -> ResponseFormat:
        return cls(FormatKind.JSON)

    @classmethod
    def from_schema(cls, schema: Any, *, name: str = "", strict: bool = False) -> ResponseFormat:
        """A JSON schema (parsed JSON) as a format; StructuredOutputError with one sentence when it cannot be used."""
        try:
            text = schema if isinstance(schema, str) else json.dumps(schema, ensure_ascii=False)
        except RecursionError:
            raise StructuredOutputError(f"The JSON schema nests deeper than {MAX_DEPTH} levels.") from None
        except (TypeError, ValueError) as exc:
            raise StructuredOutputError(f"The JSON schema is not JSON ({_short(exc, 80)}).") from None
        fmt = cls(FormatKind.SCHEMA, _canonical(text), name=str(name or "")[:64], strict=bool(strict))
        fmt.grammar_text()  # checks the schema and converts it (cached)
        return fmt

    @classmethod
    def from_schema_text(cls, text: str, *, name: str = "", strict: bool = False) -> ResponseFormat:
        """A schema as typed or read from a file (JSON text)."""
        return cls.from_schema(text, name=name, strict=strict)

    @classmethod
    def from_openai(cls, value: Any) -> ResponseFormat:
        """OpenAI's `response_format`: {"type": "text" | "json_object"} or
        {"type": "json_schema", "json_schema": {"name", "schema", "strict"}}."""
        if value is None:
            return cls()
        if not isinstance(value, dict):
            raise StructuredOutputError("'response_format' must be an object with a 'type'.")
        kind = value.get("type")
        if kind == "text":
            return cls()
        if kind == "json_object":
            return cls.json_object()
        if kind == "json_schema":
            spec = value.get("json_schema")
            if not isinstance(spec, dict) or not isinstance(spec.get("schema"), dict):
                raise StructuredOutputError(
                    "A 'json_schema' response format needs 'json_schema': {'name': ..., 'schema': {...}}."
                )
            return cls.from_schema(spec["schema"], name=str(spec.get("name") or ""), strict=bool(spec.get("strict")))
        raise StructuredOutputError(
            f"Unknown response format type {str(kind)[:40]!r}; use text, json_object or json_schema."
        )

    @classmethod
    def from_dict(cls, data: Any) -> ResponseFormat:
        """The form `to_dict` writes (kept with a conversation's settings), or OpenAI's; anything else is text. A
        schema's text is taken as it was kept, unchecked: using it says what is wrong with it."""
        if not isinstance(data, dict):
            return cls()
        if data.get("type") == FormatKind.SCHEMA.value and isinstance(data.get("schema_text"), str):
            return cls(FormatKind.SCHEMA, data["schema_text"], name=str(data.get("name") or "")[:64],
                       strict=bool(data.get("strict")))  # fmt: skip
        try:
            return cls.from_openai(data)
        except StructuredOutputError:
            return cls()

    @property
    def is_text(self) -> bool:
        return self.kind is FormatKind.TEXT

    @property
    def schema(self) -> Any:
        return json.loads(_canonical(self.schema_json)) if self.kind is FormatKind.SCHEMA else None

    def check(self) -> None:
        """StructuredOutputError (one sentence) when this format cannot constrain a reply."""
        self.grammar_text()

    def to_openai(self) -> dict[str, Any] | None:
        """The `response_format` to send a server; None for text (sent as nothing)."""
        if self.kind is FormatKind.JSON:
            return {"type": "json_object"}
        if self.kind is FormatKind.SCHEMA:
            spec = {"name": self.name or "reply", "schema": self.schema, "strict": self.strict}
            return {"type": "json_schema", "json_schema": spec}
        return None

    def to_dict(self) -> dict[str, Any]:
        """The form a conversation keeps (FORMAT_KEY): a schema as its text, checked or not."""
        if self.kind is FormatKind.SCHEMA:
            return {"type": self.kind.value, "name": self.name, "strict": self.strict, "schema_text": self.schema_json}
        return {"type": self.kind.value}

    def receipt(self) -> dict[str, Any]:
        """What a reply's receipt records: the type, and under a schema its name, hash and (when small) itself."""
        out: dict[str, Any] = {"type": self.kind.value}
        if self.kind is FormatKind.SCHEMA:
            out["name"] = self.name
            out["strict"] = self.strict
            canonical = _canonical(self.schema_json)
            out["schema_sha256"] = hashlib.sha256(canonical.encode()).hexdigest()
            if len(canonical) <= RECEIPT_SCHEMA_CHARS:
                out["schema"] = self.schema
        return out

    def describe(self) -> str:
        if self.kind is FormatKind.SCHEMA:
            return f"JSON schema {self.name}".strip() if self.name else "JSON schema"
        return "JSON" if self.kind is FormatKind.JSON else "text"

    def grammar_text(self) -> str | None:
        """The GBNF grammar (root rule "root"); None for text."""
        if self.kind is FormatKind.JSON:
            from llama_cpp.llama_grammar import JSON_GBNF

            return JSON_GBNF
        if self.kind is FormatKind.SCHEMA:
            return schema_grammar(self.schema_json)
        return None

    def check_reply(self, text: str) -> str | None:
        """None when `text` is what this format asks for; else one sentence saying how it is not."""
        if self.kind is FormatKind.TEXT:
            return None
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            return f"The reply is not complete JSON ({exc.msg} at character {exc.pos})."
        except RecursionError:
            return "The reply nests too deep to be read as JSON."
        if self.kind is FormatKind.JSON:
            return None if isinstance(value, dict) else "The reply is JSON but not an object."
        import jsonschema

        error = jsonschema.exceptions.best_match(_validator(_canonical(self.schema_json)).iter_errors(value))
        return None if error is None else f"The reply does not match the schema: {_short(error.message)}."


def stored_format(sampling: Any) -> ResponseFormat | None:
    """The response format a conversation keeps in its sampling JSON; None for text."""
    fmt = ResponseFormat.from_dict(sampling.get(FORMAT_KEY) if isinstance(sampling, dict) else None)
    return None if fmt.is_text else fmt


def cut_off_sentence(max_tokens: int | None = None) -> str:
    """What the front ends say when a JSON reply ran into the token limit before it closed."""
    limit = f" ({max_tokens} tokens)" if max_tokens else ""
    return f"The JSON reply was cut off at the max tokens limit{limit} before it closed; raise max tokens."


# -- checking and converting ------------------------------------------------------------------------------------


def _canonical(text: str) -> str:
    if len(text) > MAX_SCHEMA_CHARS:
        raise StructuredOutputError(
            f"The JSON schema is {len(text):,} characters long; constrained replies take schemas up to "
            f"{MAX_SCHEMA_CHARS:,}."
        )
    try:
        schema = json.loads(text)
    except RecursionError:
        raise StructuredOutputError(f"The JSON schema nests deeper than {MAX_DEPTH} levels.") from None
    except json.JSONDecodeError as exc:
        raise StructuredOutputError(f"The JSON schema is not valid JSON ({exc.msg}, line {exc.lineno}).") from None
    if not isinstance(schema, (dict, bool)):
        raise StructuredOutputError('A JSON schema must be a JSON object, like {"type": "object", ...}.')
    _check_size(schema)
    return json.dumps(schema, ensure_ascii=False)


def _check_size(schema: Any) -> None:
    """Depth and node count, walked without recursion (jsonschema and the converter recurse per level)."""
    nodes = 0
    stack: list[tuple[Any, int]] = [(schema, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise StructuredOutputError(f"The JSON schema nests deeper than {MAX_DEPTH} levels.")
        nodes += 1
        if nodes > MAX_NODES:
            raise StructuredOutputError(f"The JSON schema has more than {MAX_NODES:,} objects and arrays.")
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))


def _short(text: object, limit: int = 160) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


@functools.lru_cache(maxsize=32)
def _validator(schema_json: str) -> Any:
    import jsonschema

    schema = json.loads(schema_json)
    return jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)(schema)


def _walk(schema: Any, path: str = "#") -> Any:
    """Every subschema with its JSON-pointer path: values under enum, const, default, examples are data, not
    schemas, and property names are names, not keywords."""
    stack = [(schema, path)]
    while stack:
        node, where = stack.pop()
        if not isinstance(node, dict):
            continue
        yield node, where
        for key, how in _SUBSCHEMAS.items():
            sub = node.get(key)
            if how == _ONE and isinstance(sub, dict):
                stack.append((sub, f"{where}/{key}"))
            elif how == _LIST and isinstance(sub, list):
                stack.extend((s, f"{where}/{key}/{i}") for i, s in enumerate(sub))
            elif how == _MAP and isinstance(sub, dict):
                stack.extend((s, f"{where}/{key}/{name}") for name, s in sub.items())


def _check_bounds(schema: Any) -> None:
    enum_total = 0
    for node, where in _walk(schema):
        for keyword in UNENFORCED:
            if keyword in node:
                raise StructuredOutputError(
                    f"The schema uses '{keyword}' (at {where}), which a grammar cannot enforce; remove it for "
                    "constrained replies."
                )
        values = node.get("enum")
        if isinstance(values, list):
            if len(values) > MAX_ENUM:
                raise StructuredOutputError(
                    f"An enum at {where} lists {len(values):,} values; constrained replies take up to {MAX_ENUM}."
                )
            enum_total += len(values)
            if enum_total > MAX_ENUM_TOTAL:
                raise StructuredOutputError(
                    f"The schema's enums list more than {MAX_ENUM_TOTAL:,} values in all; constrained replies take "
                    f"up to {MAX_ENUM_TOTAL:,}."
                )
        for low, high, cap in (("minLength", "maxLength", MAX_LENGTH), ("minItems", "maxItems", MAX_ITEMS)):
            for keyword in (low, high):
                value = node.get(keyword)
                if isinstance(value, int) and value > cap:
                    raise StructuredOutputError(
                        f"'{keyword}' is {value:,} at {where}; constrained replies take up to {cap:,} (each one is "
                        "written out in the grammar)."
                    )
            if isinstance(node.get(low), int) and isinstance(node.get(high), int) and node[low] > node[high]:
                raise StructuredOutputError(f"'{low}' is above '{high}' at {where}: no reply could match.")
        pattern = node.get("pattern")
        if isinstance(pattern, str):
            _check_pattern(pattern, where)
        properties = node.get("properties")
        required = node.get("required")
        if isinstance(properties, dict) and isinstance(required, list) and node.get("additionalProperties") is None:
            missing = [r for r in required if isinstance(r, str) and r not in properties]
            if missing:
                raise StructuredOutputError(
                    f"'required' names {missing[0]!r} at {where}, which is not among its properties."
                )


def _check_pattern(pattern: str, where: str) -> None:
    import re

    if not (pattern.startswith("^") and pattern.endswith("$")):
        raise StructuredOutputError(f"The pattern at {where} must start with ^ and end with $ for constrained replies.")
    if "[^" in pattern:  # the class goes into the grammar as written: it would admit a quote and close the string
        raise StructuredOutputError(
            f"The pattern at {where} has a negated class [^...]; list the characters allowed instead."
        )
    for match in re.finditer(r"\{\s*(\d*)\s*(?:,\s*(\d*)\s*)?\}", pattern):
        for number in match.groups():
            if number and int(number) > MAX_REPEAT:
                raise StructuredOutputError(
                    f"The pattern at {where} repeats {int(number):,} times; constrained replies take up to "
                    f"{MAX_REPEAT:,}."
                )


def _check_refs(schema: Any) -> None:
    """Every $ref is local ("#/..."), points somewhere, and no chain of them comes back to where it started."""

    def target(ref: str) -> Any:
        node = schema
        for part in ref[2:].split("/") if ref != "#" else ():
            part = part.replace("~1", "/").replace("~0", "~")
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                raise StructuredOutputError(f"The schema's $ref {_short(ref, 80)!r} points at nothing.")
        return node

    refs_under: dict[str, set[str]] = {}

    def refs_in(node: Any) -> set[str]:
        found = set()
        for sub, _where in _walk(node):
            ref = sub.get("$ref")
            if isinstance(ref, str):
                if ref != "#" and not ref.startswith("#/"):
                    raise StructuredOutputError(
                        f"The schema's $ref {_short(ref, 80)!r} is not local; constrained replies take refs of the "
                        "form #/$defs/name only."
                    )
                found.add(ref)
        return found

    pending = list(refs_in(schema))
    while pending:
        ref = pending.pop()
        if ref not in refs_under:
            refs_under[ref] = refs_in(target(ref))
            pending.extend(refs_under[ref])
    # a cycle in ref → refs under its target: a recursive schema
    done: set[str] = set()
    for start in refs_under:
        path: list[str] = []
        on_path: set[str] = set()
        stack: list[tuple[str, bool]] = [(start, False)]
        while stack:
            ref, leaving = stack.pop()
            if leaving:
                on_path.discard(ref)
                path.pop()
                done.add(ref)
                continue
            if ref in on_path:
                raise StructuredOutputError(
                    f"The schema is recursive ($ref {_short(ref, 80)!r} refers back to itself); constrained replies "
                    "take schemas without recursion."
                )
            if ref in done:
                continue
            on_path.add(ref)
            path.append(ref)
            stack.append((ref, True))
            stack.extend((r, False) for r in refs_under.get(ref, ()))


@functools.lru_cache(maxsize=32)
def schema_grammar(schema_json: str) -> str:
    """The GBNF grammar of a schema (canonical JSON text); StructuredOutputError with one sentence when the schema
    is invalid, too demanding, or cannot be converted. Cached: a conversation sends the same schema every turn."""
    import jsonschema

    schema = json.loads(_canonical(schema_json))
    if schema is True or schema == {}:
        schema = {}
    elif schema is False:
        raise StructuredOutputError("The schema is false: no reply could match it.")
    try:
        jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator).check_schema(schema)
    except jsonschema.exceptions.SchemaError as exc:
        where = "/".join(str(p) for p in exc.path)
        at = f" (at #/{where})" if where else ""
        raise StructuredOutputError(f"The JSON schema is not valid: {_short(exc.message)}{at}.") from None
    _check_bounds(schema)
    _check_refs(schema)
    from llama_cpp.llama_grammar import SchemaConverter

    converter = SchemaConverter(prop_order={}, allow_fetch=False, dotall=False, raw_pattern=False)
    try:
        resolved = converter.resolve_refs(schema, "")
        converter.visit(resolved, "")
        grammar: str = _fixed(converter.format_grammar())
    except (AssertionError, ValueError, KeyError, TypeError, IndexError, RecursionError) as exc:
        raise StructuredOutputError(
            f"This schema cannot be turned into a grammar ({_short(exc, 120) or type(exc).__name__}); simplify it."
        ) from None
    if len(grammar) > MAX_GRAMMAR_CHARS:
        raise StructuredOutputError("The grammar made from this schema is too large; simplify the schema.")
    return grammar


def _fixed(grammar: str) -> str:
    """The converter's grammar with its `char` and `dot` rules replaced by JSON-safe ones (_RULE_FIXES)."""
    lines = grammar.split("\n")
    for i, line in enumerate(lines):
        name = line.split(" ::= ", 1)[0]
        if name in _RULE_FIXES:
            lines[i] = f"{name} ::= {_RULE_FIXES[name]}"
    return "\n".join(lines)


def llama_grammar(fmt: ResponseFormat | None, vocab: Any) -> str | None:
    """The GBNF text for `fmt` (None for text), checked against the loaded model's vocabulary first: a grammar
    llama.cpp cannot build is a NULL sampler, and llama-cpp-python would add it to its chain without looking (the
    process then crashes at the first token)."""
    if fmt is None or fmt.is_text:
        return None
    text = fmt.grammar_text()
    assert text is not None
    import llama_cpp

    sampler = llama_cpp.llama_sampler_init_grammar(vocab, text.encode("utf-8"), b"root")
    if not sampler:
        raise StructuredOutputError(
            "llama.cpp could not build a grammar from this response format (the log says why); simplify the schema."
        )
    llama_cpp.llama_sampler_free(sampler)
    return text
