"""The code blocks of the Markdown docs, for the tests that run the docs' examples exactly as written.

    text = section(Path("README.md").read_text(), "## Quick start")
    files(text)        -> {"web.yml": "...", ...}   YAML blocks whose first line is a `# relative/path.yml` comment
    commands(text)     -> [["ansible-playbook", "web.yml"], ...]   lines of the console blocks that run ansible-*

Every helper fails the calling test with a sentence naming the document and what is missing, so a doc edit
that drops or renames an example breaks its test loudly instead of testing nothing.
"""
import re
import shlex
import textwrap

import pytest

FENCE = re.compile(r"^([ \t]*)```")
PATH_COMMENT = re.compile(r"^# ([\w./-]+\.ya?ml)\s*$")


def section(text, heading, where="the document"):
    """The lines of the section whose heading line starts with ``heading`` ("## 3. Project"), up to the next
    heading of the same or a higher level; headings inside code blocks do not count."""
    level = len(heading) - len(heading.lstrip("#"))
    lines, found, fenced = [], False, False
    for line in text.splitlines(keepends=True):
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced and re.match(r"#{1,%d} " % level, line):
            if found:
                break
            found = line.startswith(heading)
            continue
        if found:
            lines.append(line)
    if not found:
        pytest.fail("%s has no section %r: the test runs that section's examples" % (where, heading))
    return "".join(lines)


def blocks(text):
    """[(language, body)] of the fenced code blocks, the block's own indentation removed (blocks in list items)."""
    found, current = [], None
    for line in text.splitlines(keepends=True):
        match = FENCE.match(line)
        if current is None and match:
            current = (line.strip()[3:].strip(), len(match.group(1)), [])
        elif current is not None and match and len(match.group(1)) == current[1]:
            found.append((current[0], textwrap.dedent("".join(current[2]))))
            current = None
        elif current is not None:
            current[2].append(line)
    return found


def files(text, expected, where="the document"):
    """{path: content} of the ``yaml`` blocks whose first line is ``# path``; every path of ``expected`` must be
    among them."""
    found = {}
    for lang, body in blocks(text):
        match = PATH_COMMENT.match(body.split("\n", 1)[0]) if lang == "yaml" else None
        if match:
            found[match.group(1)] = body
    missing = sorted(set(expected) - set(found))
    if missing:
        pytest.fail("%s has no yaml block starting with the line '# %s' (found: %s): the test writes the files "
                    "from those blocks" % (where, "', '# ".join(missing), ", ".join(sorted(found)) or "none"))
    return found


def commands(text, where="the document"):
    """The command lines (split as a shell would, comments dropped) of the ``console`` blocks whose commands all
    run an ansible program (``make`` blocks and the like are not the examples these tests run)."""
    found = []
    for lang, body in blocks(text):
        if lang != "console":
            continue
        lines = [shlex.split(line, comments=True) for line in body.splitlines()]
        lines = [words for words in lines if words]
        if lines and all(words[0].startswith("ansible") for words in lines):
            found.extend(lines)
    if not found:
        pytest.fail("%s has no console block of ansible commands: the test runs the commands it shows" % where)
    return found
