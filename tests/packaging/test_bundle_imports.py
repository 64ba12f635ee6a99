"""The bundle cannot drift from the code: nothing LlamaDesk imports, at start-up or on first use, is left out of it.

The frozen app runs the same sweep (`llamadesk --import-sweep`, packaging/pyinstaller/check_frozen.py); this test
holds the development environment's answer against the bundle's exclude list without building anything.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "packaging" / "pyinstaller"))
import slimming  # noqa: E402

from llamadesk import import_sweep  # noqa: E402

SWEEP = textwrap.dedent(
    """
    import json, sys
    from llamadesk import import_sweep
    result = import_sweep.sweep()
    json.dump({"modules": result.modules, "imported": sorted(result.imported), "loaded": sorted(result.loaded),
               "failures": result.failures}, sys.stdout)
    """
)


@pytest.fixture(scope="module")
def swept() -> dict[str, Any]:
    """The sweep in a fresh interpreter, so that nothing the test session imported counts."""
    proc = subprocess.run(
        [sys.executable, "-c", SWEEP], capture_output=True, text=True, timeout=240, check=False, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    data: dict[str, Any] = json.loads(proc.stdout)
    return data


def test_every_module_and_everything_it_imports_imports(swept: dict[str, Any]) -> None:
    assert swept["failures"] == {}
    assert "llamadesk.ui.single_instance" in swept["modules"]
    assert "llamadesk.server.runner" in swept["modules"]


def test_lazy_imports_are_found_in_the_bytecode(swept: dict[str, Any]) -> None:
    imported = set(swept["imported"])
    assert "uvicorn" in imported  # imported inside a function of llamadesk/server/runner.py
    assert {"PySide6.QtNetwork", "llama_cpp", "sqlite3"} <= imported
    assert "llamadesk.core.history" in imported  # relative and absolute forms resolve to one name


def test_nothing_the_app_imports_is_excluded_from_the_bundle(swept: dict[str, Any]) -> None:
    direct = {name: slimming.excluded(name) for name in swept["imported"]}
    assert {n: e for n, e in direct.items() if e} == {}, "LlamaDesk imports these, and the bundle leaves them out"
    loaded = {name: slimming.excluded(name) for name in swept["loaded"]}
    hits = {n: e for n, e in loaded.items() if e and e not in slimming.OPTIONAL}
    assert hits == {}, "the app's imports load these, and the bundle leaves them out"


def test_the_check_fails_for_the_bug_that_broke_the_installers(monkeypatch: pytest.MonkeyPatch) -> None:
    """With PySide6.QtNetwork back on the list (the one-window feature then cannot start), excluded() names it."""
    monkeypatch.setattr(slimming, "EXCLUDES", [*slimming.EXCLUDES, "PySide6.QtNetwork", "uvicorn"])
    found = import_sweep.imports_in("llamadesk.ui.single_instance") | import_sweep.imports_in("llamadesk.server.runner")
    assert slimming.excluded("PySide6.QtNetwork") == "PySide6.QtNetwork"
    assert {n for n in found if slimming.excluded(n)} >= {"PySide6.QtNetwork", "uvicorn"}


def test_optional_exclusions_are_excluded_and_explained() -> None:
    for name, why in slimming.OPTIONAL.items():
        assert slimming.excluded(name) == name
        assert len(why) > 20


def test_the_sweep_reports_a_module_that_does_not_import(tmp_path: Path) -> None:
    """The frozen check relies on the sweep failing loudly; a missing module is one line and exit status 1."""
    (tmp_path / "sitecustomize.py").write_text(
        "import sys\nclass Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'uvicorn' or name.startswith('uvicorn.'):\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "sys.meta_path.insert(0, Block())\n",
        encoding="utf-8",
    )
    proc = subprocess.run(
        [sys.executable, "-m", "llamadesk", "--import-sweep"],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
    )
    assert proc.returncode == 1
    assert "import-sweep: uvicorn: ModuleNotFoundError" in proc.stderr

