"""`llamadesk chat --json` and `--json-schema FILE` as a user runs them: a real subprocess, real llama.cpp on the tiny
model (random weights: only the grammar makes its reply JSON), real SQLite."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import jsonschema

from tests.e2e.test_cli import cli

SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "pattern": "^[A-Z][a-z]{1,10}$"},
        "sunny": {"type": "boolean"},
        "rank": {"enum": [1, 2, 3]},
    },
    "required": ["city", "sunny", "rank"],
}


def test_json_schema_reply_validates_and_is_recorded(llamadesk_home: Path, tiny_model: Path, tmp_path: Path) -> None:
    schema_file = tmp_path / "weather.json"
    schema_file.write_text(json.dumps(SCHEMA), encoding="utf-8")
    for seed in ("1", "2"):
        result = cli("chat", "--model", str(tiny_model), "--json-schema", str(schema_file), "--seed", seed,
                     "--max-tokens", "200", "--temperature", "1.2", "weather?", home=llamadesk_home)  # fmt: skip
        assert result.returncode == 0, result.stderr
        jsonschema.validate(json.loads(result.stdout), SCHEMA)
    con = sqlite3.connect(llamadesk_home / "data" / "history.sqlite3")
    try:
        receipt = json.loads(con.execute("SELECT receipt_json FROM messages WHERE role='assistant'").fetchone()[0])
    finally:
        con.close()
    assert receipt["response_format"]["type"] == "json_schema" and receipt["response_format"]["name"] == "weather"


def test_json_reply_is_an_object_or_says_it_was_cut_off(llamadesk_home: Path, tiny_model: Path, tmp_path: Path) -> None:
    result = cli("chat", "--model", str(tiny_model), "--json", "--seed", "3", "--max-tokens", "300", "--no-history",
                 "hi", home=llamadesk_home)  # fmt: skip
    if result.returncode == 0:
        assert isinstance(json.loads(result.stdout), dict)
    else:
        assert "cut off" in result.stderr and result.stdout.lstrip().startswith("{")
    schema_file = tmp_path / "weather.json"  # a schema's reply takes more than 3 tokens ({} would not)
    schema_file.write_text(json.dumps(SCHEMA), encoding="utf-8")
    cut = cli("chat", "--model", str(tiny_model), "--json-schema", str(schema_file), "--max-tokens", "3",
              "--no-history", "hi", home=llamadesk_home)  # fmt: skip
    assert cut.returncode == 1
    last = cut.stderr.strip().splitlines()[-1]
    assert last.startswith("llamadesk chat: The JSON reply was cut off") and "(3 tokens)" in last


def test_a_bad_schema_file_is_one_line(llamadesk_home: Path, tiny_model: Path, tmp_path: Path) -> None:
    cases = {
        "missing.json": None,
        "broken.json": "{not json",
        "recursive.json": json.dumps(
            {"$defs": {"n": {"type": "object", "properties": {"n": {"$ref": "#/$defs/n"}}}}, "$ref": "#/$defs/n"}
        ),
        "huge.json": json.dumps({"type": "string", "maxLength": 10**9}),
        "enum.json": json.dumps({"enum": list(range(10_000))}),
    }
    for name, text in cases.items():
        path = tmp_path / name
        if text is not None:
            path.write_text(text, encoding="utf-8")
        result = cli("chat", "--model", str(tiny_model), "--json-schema", str(path), "hi", home=llamadesk_home)
        assert result.returncode == 2, (name, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("llamadesk chat: ") and "Traceback" not in result.stderr
        assert result.stdout == ""
    both = cli("chat", "--model", str(tiny_model), "--json", "--json-schema", str(tmp_path / "x.json"), "hi",
               home=llamadesk_home)  # fmt: skip
    assert both.returncode == 2 and "not allowed with" in both.stderr
