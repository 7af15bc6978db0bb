"""docs/architecture.md, "Rules, each checked by a test": every rule there is quoted by the docstring of at least
one test (``docs/architecture.md: "<the rule>"``), and every such quote is a rule there, word for word."""
import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
QUOTE = re.compile(r'docs/architecture\.md: "(.+?)"(?=[\s(]|$)', re.S)


def rules():
    text = (ROOT / "docs" / "architecture.md").read_text()
    section = text.split("## Rules, each checked by a test", 1)[1].split("\n## ", 1)[0]
    return [line[2:].strip() for line in section.splitlines() if line.startswith("- ")]


def quotes():
    """{rule text: [test names]} from the docstrings of every test function under tests/."""
    found = {}
    for path in sorted((ROOT / "tests").rglob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                for quoted in QUOTE.findall(ast.get_docstring(node) or ""):
                    found.setdefault(" ".join(quoted.split()), []).append("%s::%s" % (path.name, node.name))
    return found


def test_every_rule_is_checked_by_a_test():
    assert rules(), "the section lists no rule"
    quoted = quotes()
    assert [rule for rule in rules() if rule not in quoted] == []


def test_every_quote_is_a_rule_word_for_word():
    stated = set(rules())
    assert {quote: names for quote, names in quotes().items() if quote not in stated} == {}
