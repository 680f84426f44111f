"""The table of intended differences from kubevirt.core, read from docs/migrating-from-kubevirt-core.md.

Every differential test (behaviour, documentation, inventory) turns each difference it observes into a key
``plugin:area:path`` and asks ``Table.match(key)`` for the row that allows it; a difference that matches no row
fails the test. The table is the documentation users read, so the tests and the docs cannot drift apart.
"""
import fnmatch
import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "migrating-from-kubevirt-core.md"
HEADING = "## Intended differences"


class Table(object):
    def __init__(self, rows):
        self.rows = rows            # [(id, [pattern, ...])]

    @classmethod
    def load(cls, path=DOC):
        text = Path(path).read_text(encoding="utf-8")
        start = text.index(HEADING)
        end = text.find("\n## ", start + len(HEADING))
        section = text[start:end if end >= 0 else len(text)]
        rows = []
        for line in section.splitlines():
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) < 3 or not line.lstrip().startswith("|") or set(cells[0]) <= set("-: ") or cells[0] == "id":
                continue
            patterns = re.findall(r"`([^`]+)`", cells[1])
            if not patterns:
                raise ValueError("intended-differences row %r names no `plugin:area:path` pattern" % cells[0])
            for pat in patterns:
                if pat.count(":") < 2:
                    raise ValueError("intended-differences row %r: %r is not plugin:area:path" % (cells[0], pat))
            rows.append((cells[0], patterns))
        if not rows:
            raise ValueError("no rows under %r in %s" % (HEADING, path))
        return cls(rows)

    def match(self, key):
        """The id of the first row with a pattern matching `key`, or None."""
        for row_id, patterns in self.rows:
            for pat in patterns:
                if fnmatch.fnmatchcase(key, pat):
                    return row_id
        return None

    def ids(self):
        return [row[0] for row in self.rows]
