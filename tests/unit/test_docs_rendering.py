"""Every plugin's and role's documentation rendered as the docs site renders it (antsibull-docs' RST), then
read back: markup that the renderer cut short shows as a code span with an unbalanced bracket
(C(windows(10.0.20348\\)/amd64) became ``windows(10.0.20348\\`` followed by ``)/amd64)``), and markup it
could not parse as an error message. ansible-doc cuts C() at the first ``)`` in the same way."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

COLLECTIONS = Path(__file__).resolve().parents[2] / "build" / "collections"

# The inline markup antsibull-docs writes: :literal:`...`, :ansval:`...`, :ansopt:`...`, :ansretval:`...`,
# ``...``. The content is RST-escaped (backslashes).
INLINE = re.compile(r":(?:literal|ansval|ansopt|ansretval|ansenvvar|ansenvvarref):`((?:[^`\\]|\\.)*)`|``([^`]+)``")
PAIRS = (("(", ")"), ("[", "]"), ("{", "}"))


def unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text).replace("\\ ", "")


def unbalanced(text: str) -> bool:
    return any(text.count(opening) != text.count(closing) for opening, closing in PAIRS)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> dict:
    """File name -> RST text of every plugin and role page."""
    dest = tmp_path_factory.mktemp("docs-rst")
    venv_bin = Path(sys.executable).parent
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS), "ANSIBLE_COLLECTIONS_SCAN_SYS_PATH": "false",
           "PATH": f"{venv_bin}:{os.environ['PATH']}"}
    proc = subprocess.run([str(venv_bin / "antsibull-docs"), "collection", "--use-current", "--fail-on-error",
                           "--dest-dir", str(dest), "archfleet.multiarch"], env=env, capture_output=True, text=True,
                          timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    pages = {path.name: path.read_text() for path in (dest / "collections" / "archfleet" / "multiarch").glob("*_*.rst")}
    assert pages, "antsibull-docs rendered no plugin page"
    return pages


def test_every_plugin_and_role_is_rendered(rendered):
    plugins = Path(__file__).resolve().parents[2] / "plugins"
    folders = (("module", "modules"), ("filter", "filter"), ("lookup", "lookup"))
    expected = {f"{path.stem}_{kind}.rst" for kind, folder in folders
                for path in (plugins / folder).glob("*.py") if not path.name.startswith("_")}
    expected |= {f"{path.name}_role.rst" for path in (plugins.parent / "roles").iterdir() if path.is_dir()}
    assert expected <= set(rendered)


def test_no_markup_is_cut_short_or_unparsed(rendered):
    problems = []
    for name, text in sorted(rendered.items()):
        for number, line in enumerate(text.splitlines(), 1):
            if "ERROR while parsing" in line:
                problems.append(f"{name}:{number}: {line.strip()}")
            for match in INLINE.finditer(line):
                content = unescape(match.group(1) if match.group(1) is not None else match.group(2))
                if unbalanced(content):
                    problems.append(f"{name}:{number}: code span {content!r} has an unbalanced bracket "
                                    "(a ')' inside C() ends it; use V() with '\\)', or rephrase)")
    assert problems == []


def test_the_check_finds_a_cut_short_markup():
    line = r"as :literal:`lookup(..., wantlist=true`\ )) to get them"
    assert [unbalanced(unescape(m.group(1))) for m in INLINE.finditer(line)] == [True]


def test_the_modules_of_each_action_group_document_their_membership():
    """module_defaults groups (meta/runtime.yml action_groups) are stated in each member's attributes."""
    import json

    import yaml

    root = Path(__file__).resolve().parents[2]
    groups = yaml.safe_load((root / "meta" / "runtime.yml").read_text())["action_groups"]
    modules = sorted(path.stem for path in (root / "plugins" / "modules").glob("*.py"))
    venv_bin = Path(sys.executable).parent
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS), "ANSIBLE_COLLECTIONS_SCAN_SYS_PATH": "false"}
    docs = json.loads(subprocess.run([str(venv_bin / "ansible-doc"), "--json",
                                      *("archfleet.multiarch." + name for name in modules)],
                                     env=env, capture_output=True, text=True, timeout=300, check=True).stdout)
    for name in modules:
        attribute = docs["archfleet.multiarch." + name]["doc"].get("attributes", {}).get("action_group") or {}
        documented = set(attribute.get("membership") or [])
        expected = {"archfleet.multiarch." + group for group, members in groups.items() if name in members}
        assert documented == expected, name
