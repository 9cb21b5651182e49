"""The generator's template files and how they are filled.

Templates live in `device_agent/fpga/templates/` and ship as package data. C++ templates
keep their real extension and compile on their own (their markers are comments, and a
`begin`/`end` block holds a placeholder that keeps them valid); the others end in `.in`.
Two kinds of marker:

- a line `// hilnas:insert NAME` (or `#` or `<!-- ... -->` as the comment) is replaced by
  the generated lines of block NAME, indented as the marker;
- lines from `// hilnas:begin NAME` to `// hilnas:end NAME` are replaced the same way (the
  placeholder between them is dropped);
- `@NAME@` in a `.in` file is replaced by a value (autoconf's convention for `.in` files).

Filling is strict: a marker without a block, a block or value without its marker, and an
`@NAME@` left unfilled are errors naming the template, so a template and its writer cannot
drift apart silently.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from importlib import resources

_PACKAGE = "device_agent.fpga"
_VALUE = re.compile(r"@([A-Z][A-Z0-9_]*)@")
_MARKER = re.compile(
    r"^(?P<indent>[ \t]*)(?://|#|<!--)\s*hilnas:(?P<what>insert|begin|end)\s+(?P<name>\w+)"
    r"\s*(?:-->)?\s*$"
)


class TemplateError(ValueError):
    """A template and the values or blocks given to fill it do not match."""


def read_template(name: str) -> str:
    """The text of template `name` (a file of device_agent/fpga/templates)."""
    path = resources.files(_PACKAGE).joinpath("templates", name)
    if not path.is_file():
        raise TemplateError(f"no template {name!r} in {_PACKAGE}/templates")
    return path.read_text()


def fill(
    name: str,
    *,
    values: Mapping[str, object] | None = None,
    blocks: Mapping[str, Iterable[str]] | None = None,
) -> str:
    """Template `name` with its `@NAME@` values and its marked blocks filled in."""
    values = dict(values or {})
    blocks = {k: list(v) for k, v in (blocks or {}).items()}
    text = read_template(name)
    used_values: set[str] = set()

    def value(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in values:
            raise TemplateError(f"template {name}: no value for @{key}@")
        used_values.add(key)
        return str(values[key])

    text = _VALUE.sub(value, text)
    out: list[str] = []
    used_blocks: set[str] = set()
    skipping: str | None = None
    for line in text.splitlines(keepends=True):
        marker = _MARKER.match(line.rstrip("\n"))
        if skipping is not None:
            if marker and marker["what"] == "end" and marker["name"] == skipping:
                skipping = None
            continue
        if marker is None:
            out.append(line)
            continue
        key, what = marker["name"], marker["what"]
        if what == "end" or key not in blocks:
            raise TemplateError(f"template {name}: marker {what} {key} has no block to fill")
        if key in used_blocks:
            raise TemplateError(f"template {name}: block {key} is marked twice")
        used_blocks.add(key)
        out.extend(f"{marker['indent']}{row}\n" if row else "\n" for row in blocks[key])
        if what == "begin":
            skipping = key
    if skipping is not None:
        raise TemplateError(f"template {name}: 'hilnas:begin {skipping}' has no end")
    unused = sorted(set(values) - used_values) + sorted(set(blocks) - used_blocks)
    if unused:
        raise TemplateError(f"template {name}: nothing marks {', '.join(unused)}")
    return "".join(out)


__all__ = ["TemplateError", "fill", "read_template"]
