"""The xml2arrow engine of the XML reader: which specs it may run, and its configuration.

    read: {format: xml, ..., engine: auto}      # auto (default) | lxml | xml2arrow

xml2arrow (Rust, quick-xml) parses a block's records straight into Arrow, several times faster
than libxml2 + XSLT, and releases the GIL, so its blocks run on threads of the reading process
(`xmlpool.Runner(threads=True)`) rather than in worker processes. It sits behind the same splitter
and per-block checks as the lxml engine, so everything outside the records (prolog, DOCTYPE blanking, refused entity
declarations, the skeleton parse of the gaps and the tail, the record-boundary checks that catch a
truncated file) is unchanged. Inside the records its semantics differ from XPath in ways the worker
guards against block by block, falling back to lxml for that block (see `xmlwork.FastParser`):

* a value is the element's own text, not all descendant text -> a block where an extracted element
  has a child element is parsed by lxml (one RE2 scan per block, `guard_patterns`, which also find
  undefined entity references: xml2arrow refuses them only in extracted elements);
* a second match in one record is an error, not "first wins" -> lxml;
* `\\r` is not normalised, namespaces are ignored, comments/CDATA/PIs -> lxml;
* invalid UTF-8 and any xml2arrow error -> lxml, which reports the error with line and column.

Specs it cannot express run on lxml: a record name with a namespace prefix, `.` (the record's
text), a repeated attribute. Tables whose paths would take each other's elements (xml2arrow gives
an element to one table only) are parsed in separate passes over the block (see `_tables`). The version
is pinned (`PINNED`): 0.19 changed behaviour (empty text is now missing), so another version is not
used by `auto`.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from importlib import metadata
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from icefloe.errors import ConfigError
from icefloe.pipelines.readers.xmlspec import ENGINES, FieldSpec, XmlSpec

__all__ = ["CHUNK_BYTES", "ENGINES", "PINNED", "FastParser", "engine_config", "guard_patterns", "has_markup", "installed", "searches"]

PINNED = "0.19.0"
CHUNK_BYTES = 4 << 20  # the default block size with xml2arrow: fewer per-block costs (measured: 4 MiB ~15% less CPU than 2)
WRAPPER = "w"  # the element the worker wraps a block's records in (xmlwork.Extractor)
PARENT, ROW = "p", "r"  # xml2arrow table name of the parent rows, and the level of its record index


def _view(data: bytes) -> pa.Array:
    """`data` as a one-element binary array, without copying it."""
    offsets = pa.py_buffer((0).to_bytes(8, "little") + len(data).to_bytes(8, "little"))
    return pa.Array.from_buffers(pa.large_binary(), 1, [None, offsets, pa.py_buffer(data)])


def searches(data: bytes, pattern: str) -> bool:
    """Whether RE2 `pattern` occurs in `data` (any bytes, valid UTF-8 or not): one C-level scan,
    several times faster than Python's `re` or `in` on the same bytes (measured: report)."""
    return bool(pc.match_substring_regex(_view(data), pattern)[0].as_py())


_SMALL = 1 << 16  # below this Python's own scan is cheaper than an Arrow call


def has_markup(data: bytes) -> bool:
    """`xmlwork.has_markup` (a comment, CDATA section or PI may start here), fast on large buffers."""
    if len(data) < _SMALL:
        return b"<!" in data or b"<?" in data
    return searches(data, "<[!?]")


def installed() -> str | None:
    """The installed xml2arrow version, or None."""
    try:
        return metadata.version("xml2arrow")
    except metadata.PackageNotFoundError:
        return None


def engine_config(spec: XmlSpec, engine: str) -> str | None:
    """The xml2arrow configurations (a JSON list of them, one per pass) for the workers, or None for lxml."""
    if engine == "lxml":
        return None
    version = installed()
    if version != PINNED:
        if engine == "xml2arrow":
            found = f"xml2arrow {version} is installed" if version else "xml2arrow is not installed"
            raise ConfigError(f"xml engine xml2arrow needs xml2arrow=={PINNED} ({found}); pip install 'xml2arrow=={PINNED}'")
        return None
    passes = _tables(spec)
    if passes is None:
        if engine == "xml2arrow":
            raise ConfigError("xml engine xml2arrow cannot express these fields (a record name with a prefix, '.', or a repeated attribute); use engine: auto or lxml")
        return None
    return json.dumps([{"parser_options": {"trim_text": False}, "tables": tables} for tables in passes], ensure_ascii=False)


# an entity reference other than the five predefined ones and character references: lxml refuses
# it (no DTD declares it), xml2arrow only where it is extracted
_UNDEFINED_ENTITY = (
    "&(?:[^#alqg]|a(?:[^mp]|m[^p]|mp[^;]|p[^o]|po[^s]|pos[^;])|l[^t]|lt[^;]|g[^t]|gt[^;]"
    "|q(?:[^u]|u[^o]|uo[^t]|uot[^;]))"
)


def guard_patterns(spec: XmlSpec) -> tuple[str, ...]:
    """RE2 patterns that find what xml2arrow would read differently from lxml in a block: an
    extracted element with a child element (mixed content), an undefined entity reference. Two
    scans, not one alternation: each alone runs several times faster than both together."""
    names = sorted({f.steps[-1] for f in _all_fields(spec) if f.attr is None and f.steps})
    if not names:
        return (_UNDEFINED_ENTITY,)
    # the start tag (no '<' can occur in it: attribute values may not hold one), then text, then a
    # '<' that opens neither an end tag nor a comment/CDATA/PI (those send the block to lxml anyway);
    # a self-closing extracted element with attributes followed by an element is a false alarm
    # (lxml reads that block), never a miss
    mixed = "<(?:" + "|".join(re.escape(n) for n in names) + ")[\\s>][^<]*<[^/!?]"
    return (mixed, _UNDEFINED_ENTITY)


class FastParser:
    """xml2arrow over a block's records, or None where its answer could differ from lxml's: the
    caller then parses the block with lxml, which also finds and places any error (module docstring)."""

    def __init__(self, parsers: list[Any], guards: tuple[str, ...]) -> None:
        self.parsers, self.guards = parsers, guards

    @classmethod
    def create(cls, config: str, guards: tuple[str, ...]) -> FastParser | None:
        try:
            import xml2arrow
        except ImportError:  # metadata said installed, yet it does not import: lxml reads
            return None
        parsers = []
        for one in json.loads(config):  # one parser per pass (xmlfast._tables)
            handle, path = tempfile.mkstemp(suffix=".yaml", prefix="icefloe-xml2arrow-")
            try:
                with os.fdopen(handle, "w", encoding="utf-8") as out:
                    json.dump(one, out)  # JSON is YAML
                parsers.append(xml2arrow.XmlToArrowParser(path))
            finally:
                os.unlink(path)
        return cls(parsers, guards)

    def parse(self, document: bytes, records: int) -> dict[str, Any] | None:
        # the cheap byte tests first; \r is normalised by XML parsers but not by xml2arrow
        if b"\r" in document:
            return None
        whole = _view(document)
        if pc.match_substring_regex(whole, "xmlns")[0].as_py():
            return None
        if not document.isascii():
            try:
                whole.cast(pa.large_string())  # validates UTF-8 (xml2arrow garbles that error)
            except pa.ArrowInvalid:
                return None
        for guard in self.guards:
            if pc.match_substring_regex(whole, guard)[0].as_py():
                return None
        tables: dict[str, Any] = {}
        for parser in self.parsers:
            try:
                tables.update(parser.parse(document))
            except Exception:  # noqa: BLE001 - any refusal: lxml parses this block and reports it
                return None
        parent = tables.get(PARENT)
        if parent is None or parent.num_rows != records:
            return None
        return tables


def _all_fields(spec: XmlSpec) -> list[FieldSpec]:
    return [*spec.fields, *(f for child in spec.children for f in child.fields)]


def _tables(spec: XmlSpec) -> list[list[dict]] | None:
    """xml2arrow tables, in passes: the parent (one row per record), one per repeated field ("f<i>")
    and one per child ("c<i>"), each with the record index `ROW`; None when not expressible."""
    if ":" in spec.record or any(not f.steps and f.attr is None for f in _all_fields(spec)):
        return None
    base = f"/{WRAPPER}/{spec.record}"

    def field(name: str, steps: tuple[str, ...], attr: str | None) -> dict:
        path = "/".join([base, *steps, *([f"@{attr}"] if attr else [])])
        return {"name": name, "xml_path": path, "data_type": "Utf8", "nullable": True}

    parent: list[dict] = []
    tables: list[dict] = [{"name": PARENT, "xml_path": f"/{WRAPPER}", "levels": [ROW], "fields": parent}]
    containers: list[tuple[str, ...]] = []
    leaves: list[list[tuple[str, ...]]] = [[]]  # per table, the element paths of its fields
    for index, f in enumerate(spec.fields):
        if not f.repeated:
            parent.append(field(f"f{index}", f.steps, f.attr))
            leaves[0].append(f.steps)
            continue
        if f.attr is not None:  # xml2arrow makes a row per element, whether it has the attribute or not
            return None
        containers.append(f.steps[:-1])
        leaves.append([f.steps])
        xml_path = "/".join([base, *f.steps[:-1]])
        tables.append({"name": f"f{index}", "xml_path": xml_path, "levels": [ROW, "v"], "fields": [field("v", f.steps, None)]})
    for index, child in enumerate(spec.children):
        containers.append(child.steps[:-1])
        leaves.append([(*child.steps, *f.steps) for f in child.fields])
        fields = [field(f"f{k}", (*child.steps, *f.steps), f.attr) for k, f in enumerate(child.fields)]
        xml_path = "/".join([base, *child.steps[:-1]])
        tables.append({"name": f"c{index}", "xml_path": xml_path, "levels": [ROW, "v"], "fields": fields})
    # xml2arrow gives an element's text to one table only: a table's field that lies inside a
    # deeper container of another table, or that is or holds another table's container, comes out
    # empty (seen with 0.19). Such tables go to separate passes over the block, each with the
    # parent table (without fields in the later passes) to count the records.
    depth = [0, *(len(c) + 1 for c in containers)]
    boxes = [(), *containers]

    def clash(a: int, b: int) -> bool:
        if boxes[a] == boxes[b] and a and b:
            return True
        for x, y in ((a, b), (b, a)):
            for leaf in leaves[x]:
                if leaf[: len(boxes[y])] == boxes[y] and depth[y] > depth[x]:
                    return True
                if boxes[y][: len(leaf)] == leaf:
                    return True
        return False

    passes: list[list[int]] = [[0]]
    for table in range(1, len(tables)):
        home = next((p for p in passes if not any(clash(table, other) for other in p)), None)
        if home is None:
            passes.append(home := [])
        home.append(table)
    out = []
    for number, members in enumerate(passes):
        structure = {**tables[0], "fields": []} if number else tables[0]
        out.append([structure, *(tables[t] for t in members if t)])
    return out
