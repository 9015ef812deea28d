"""Synthetic USPTO "trademark-applications-daily" XML: a deterministic generator, the `read` config the
XML benchmark and example use, and a plain reference extraction to check the reader against.

    write_daily(path, records, seed=1, compress="none"|"gzip"|"zip")   # ~3.3 KB per case-file
    USPTO_READ                                                        # the pipeline's `read:` section
    reference(path)                                                   # {table: [row dicts]} via xml.etree

The generated files carry the traps of the real ones: `status-code` both in the case-file header and
in every classification, `<registration-date/>` empty in most records, records without attorney or
correspondent, owners whose nationality is a US state rather than a country, entities (`&amp;`,
`&lt;`, `&#233;`) and raw non-ASCII text, a DOCTYPE naming a DTD that must never be fetched, and
several `<action-keys>` groups per file.
"""

from __future__ import annotations

import datetime as dt
import gzip
import random
import xml.etree.ElementTree as ET
import zipfile
from decimal import Decimal
from pathlib import Path
from typing import IO, Any, Literal

__all__ = ["PARENT", "USPTO_READ", "reference", "write_daily"]

PARENT = "case_files"
"""The key of the parent rows in `reference()`'s result (children are keyed by their child name)."""

_DATE = {"type": "date", "format": "%Y%m%d"}
USPTO_READ: dict[str, Any] = {
    "format": "xml",
    "record": "case-file",
    "fields": {
        "serial_number": {"path": "serial-number", "type": "long"},
        "registration_number": "registration-number",
        "transaction_date": {"path": "transaction-date", **_DATE},
        "filing_date": {"path": "case-file-header/filing-date", **_DATE},
        "registration_date": {"path": "case-file-header/registration-date", **_DATE},
        "status_code": {"path": "case-file-header/status-code", "type": "int"},
        "status_date": {"path": "case-file-header/status-date", **_DATE},
        "mark_identification": "case-file-header/mark-identification",
        "attorney_name": "case-file-header/attorney-name",
        "correspondent_address": "correspondent/address-1",
        "owner_countries": {"path": "case-file-owners/case-file-owner/nationality/country", "repeated": True},
        "event_codes": {"path": "case-file-event-statements/case-file-event-statement/code", "repeated": True},
    },
    "header": {
        "version_no": "version/version-no",
        "creation_datetime": "creation-datetime",
    },
    "children": {
        "classifications": {
            "path": "classifications/classification",
            "fields": {"international_code": "international-code", "status_code": {"path": "status-code", "type": "int"}},
            "parent_key": ["serial_number"],
        },
        "owners": {
            "path": "case-file-owners/case-file-owner",
            "fields": {"party_name": "party-name", "country": "nationality/country"},
            "parent_key": ["serial_number"],
        },
    },
}

_PROLOG = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<!DOCTYPE trademark-applications-daily SYSTEM "trademark-applications-daily-v2-3.dtd">\n'
    "<trademark-applications-daily>\n"
    "  <version>\n    <version-no>2.3</version-no>\n    <version-date>20260101</version-date>\n  </version>\n"
    "  <creation-datetime>202601051200</creation-datetime>\n"
    "<application-information>\n<file-segments>\n<file-segment>TRMK</file-segment>\n"
)
_TAIL = "</file-segments>\n</application-information>\n</trademark-applications-daily>\n"
_ACTION_KEYS = ("TR", "NA", "DA", "RA", "CA", "AB")

# pools built once per seed; records pick from them, which keeps generation at string-joining speed
_WORDS = ["ice", "floe", "acme", "river", "stone", "blue", "north", "sun", "cloud", "maple", "harbor", "swift", "golden", "quiet", "cedar", "iron", "lumen", "orbit", "pixel", "vista", "nova", "summit", "prairie", "ember", "falcon", "willow"]
_MARK_EXTRAS = ("&amp; Co", "&lt;NEW&gt;", "caf&#233;", "Café", "Müller", "日本", "Zoë", "Ärger", "O'Brien", "“Quoted”")
_GOODS = (
    "computer software for managing data lakes",
    "downloadable mobile applications",
    "clothing, namely, shirts &amp; hats",
    "coffee &amp; tea; café services",
    "scientific apparatus &lt;not medical&gt;",
    "retail store services featuring bücher",
    "educational services, namely, conducting classes in 日本 calligraphy",
    "providing temporary use of non-downloadable software",
)
_EVENTS = (
    ("NWAP", "I", "NEW APPLICATION ENTERED"),
    ("MPMK", "O", "NOTICE OF PSEUDO MARK MAILED"),
    ("DOCK", "D", "ASSIGNED TO EXAMINER"),
    ("CNRT", "R", "NON-FINAL ACTION E-MAILED"),
    ("PUBO", "A", "PUBLISHED FOR OPPOSITION"),
    ("NPUB", "E", "OFFICIAL GAZETTE PUBLICATION CONFIRMATION E-MAILED"),
    ("R.PR", "A", "REGISTERED-PRINCIPAL REGISTER"),
)
_COUNTRIES = ("US", "DE", "FR", "JP", "GB", "CA", "CN", "CH", "KR", "IT")
_STATES = ("CA", "NY", "TX", "WA", "DE")
_PARTY = ("ACME &amp; Co", "Société Générale de Café", "Müller GmbH", "日本製鉄株式会社", "Smith &lt;Holdings&gt; LLC", "Zoë Ltd.")
_CITIES = ("Alexandria", "München", "Paris", "東京", "Toronto", "Zürich")


def write_daily(
    path: str | Path,
    records: int,
    *,
    seed: int = 1,
    start_serial: int = 97000001,
    compress: Literal["none", "gzip", "zip"] = "none",
    member: str = "apc260105.xml",
    events: tuple[int, int] = (1, 4),
) -> int:
    """Write a daily file of `records` case-files; returns the bytes written to `path` (the file on
    disk, so compressed bytes for gzip and zip). Deterministic for (records, seed, start_serial).
    `events`: how many event statements a case-file has (~250 bytes each), which sets record size."""
    path = Path(path)
    if compress == "none":
        with open(path, "wb") as out:
            _write_document(out, records, seed, start_serial, events)
    elif compress == "gzip":
        with gzip.open(path, "wb", compresslevel=1) as out:
            _write_document(out, records, seed, start_serial, events)
    elif compress == "zip":
        with (
            zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive,
            archive.open(member, "w", force_zip64=True) as out,
        ):
            _write_document(out, records, seed, start_serial, events)
    else:
        raise ValueError(f"compress must be none, gzip or zip, got {compress!r}")
    return path.stat().st_size


def _write_document(out: IO[bytes] | gzip.GzipFile, records: int, seed: int, start_serial: int, events: tuple[int, int] = (1, 4)) -> None:
    rng = random.Random(seed)
    pool = _Pool(rng)
    out.write(_PROLOG.encode())
    parts: list[str] = []
    group_left = 0
    opened = False
    for index in range(records):
        if group_left == 0:  # a new <action-keys> group every few hundred records
            if opened:
                parts.append("  </action-keys>\n")
            key = _ACTION_KEYS[rng.randrange(len(_ACTION_KEYS))]
            parts.append(f"  <action-keys>\n    <action-key>{key}</action-key>\n")
            group_left, opened = rng.randint(50, 900), True
        parts.append(_case_file(rng, pool, start_serial + index, events))
        group_left -= 1
        if len(parts) >= 512:
            out.write("".join(parts).encode())
            parts.clear()
    if opened:
        parts.append("  </action-keys>\n")
    parts.append(_TAIL)
    out.write("".join(parts).encode())


class _Pool:
    def __init__(self, rng: random.Random) -> None:
        self.statements = [_statement(rng) for _ in range(64)]
        self.marks = [_mark(rng) for _ in range(256)]
        self.addresses = [f"{rng.randint(1, 9999)} {rng.choice(_WORDS).title()} Street" for _ in range(64)]
        self.people = [f"{rng.choice(_WORDS).title()} {rng.choice(_WORDS).title()}son" for _ in range(64)]
        day0 = dt.date(2015, 1, 1).toordinal()
        self.dates = [dt.date.fromordinal(day0 + rng.randrange(4000)).strftime("%Y%m%d") for _ in range(512)]


def _statement(rng: random.Random) -> str:
    goods = "; ".join(rng.choice(_GOODS) for _ in range(rng.randint(1, 3)))
    return f"Class {rng.randint(1, 45):03d}: {goods}"


def _mark(rng: random.Random) -> str:
    words = " ".join(rng.choice(_WORDS).upper() for _ in range(rng.randint(1, 3)))
    return f"{words} {rng.choice(_MARK_EXTRAS)}" if rng.random() < 0.3 else words


def _case_file(rng: random.Random, pool: _Pool, serial: int, events: tuple[int, int] = (1, 4)) -> str:
    r = rng.random
    dates = pool.dates
    filing = dates[rng.randrange(512)]
    registered = r() < 0.2
    reg_date = f"<registration-date>{dates[rng.randrange(512)]}</registration-date>" if registered else "<registration-date/>"
    attorney = f"\n        <attorney-name>{pool.people[rng.randrange(64)]}</attorney-name>" if r() < 0.8 else ""
    out = [
        "    <case-file>\n",
        f"      <serial-number>{serial}</serial-number>\n",
        f"      <registration-number>{rng.randrange(10**7) if registered else 0:07d}</registration-number>\n",
        f"      <transaction-date>2026010{rng.randint(1, 5)}</transaction-date>\n",
        "      <case-file-header>\n",
        f"        <filing-date>{filing}</filing-date>\n        {reg_date}\n",
        f"        <status-code>{rng.choice((630, 641, 661, 686, 700, 800))}</status-code>\n",
        f"        <status-date>{dates[rng.randrange(512)]}</status-date>\n",
        f"        <mark-identification>{pool.marks[rng.randrange(256)]}</mark-identification>{attorney}\n",
        f"        <mark-drawing-code>{rng.choice(('4000', '3000', '2000'))}</mark-drawing-code>\n",
        "        <trademark-in>T</trademark-in>\n",
        "      </case-file-header>\n      <case-file-statements>\n",
    ]
    for _ in range(rng.randint(1, 3)):
        code = rng.choice(("GS0091", "GS0251", "D10000", "CC0000", "TI0000"))
        out.append(
            f"        <case-file-statement>\n          <type-code>{code}</type-code>\n"
            f"          <text>{pool.statements[rng.randrange(64)]}</text>\n        </case-file-statement>\n"
        )
    out.append("      </case-file-statements>\n      <case-file-event-statements>\n")
    for number in range(1, rng.randint(events[0] + 1, events[1] + 1)):
        code, kind, text = _EVENTS[rng.randrange(len(_EVENTS))]
        out.append(
            f"        <case-file-event-statement>\n          <code>{code}</code>\n"
            f"          <type>{kind}</type>\n          <description-text>{text}</description-text>\n"
            f"          <date>{dates[rng.randrange(512)]}</date>\n          <number>{number}</number>\n"
            "        </case-file-event-statement>\n"
        )
    out.append("      </case-file-event-statements>\n")
    classes = rng.randint(0, 4)
    if classes:
        out.append("      <classifications>\n")
        for _ in range(classes):
            klass = rng.randint(1, 45)
            out.append(
                "        <classification>\n"
                f"          <international-code>{klass:03d}</international-code>\n"
                f"          <us-code>{rng.randint(1, 110):03d}</us-code>\n"
                f"          <status-code>{rng.choice((6, 7, 8))}</status-code>\n"
                f"          <status-date>{dates[rng.randrange(512)]}</status-date>\n"
                f"          <primary-code>{klass:03d}</primary-code>\n"
                "        </classification>\n"
            )
        out.append("      </classifications>\n")
    if r() < 0.85:
        out.append(
            "      <correspondent>\n"
            f"        <address-1>{pool.people[rng.randrange(64)]}</address-1>\n"
            f"        <address-2>{pool.addresses[rng.randrange(64)]}</address-2>\n"
            f"        <address-3>{rng.choice(_CITIES)}, {rng.choice(_STATES)} {rng.randint(10000, 99999)}</address-3>\n"
            "      </correspondent>\n"
        )
    out.append("      <case-file-owners>\n")
    for entry in range(1, rng.randint(2, 4)):
        nationality = (
            f"<state>{rng.choice(_STATES)}</state>" if r() < 0.15 else f"<country>{rng.choice(_COUNTRIES)}</country>"
        )
        out.append(
            "        <case-file-owner>\n"
            f"          <entry-number>{entry}</entry-number>\n"
            f"          <party-type>{rng.choice((10, 20, 30))}</party-type>\n"
            f"          <nationality>{nationality}</nationality>\n"
            f"          <party-name>{rng.choice(_PARTY)}</party-name>\n"
            f"          <address-1>{pool.addresses[rng.randrange(64)]}</address-1>\n"
            f"          <city>{rng.choice(_CITIES)}</city>\n"
            f"          <postcode>{rng.randint(10000, 99999)}</postcode>\n"
            "        </case-file-owner>\n"
        )
    out.append("      </case-file-owners>\n    </case-file>\n")
    return "".join(out)


# --- reference extraction ------------------------------------------------------------------------


def reference(path: str | Path, read: dict[str, Any] | None = None) -> dict[str, list]:
    """Every table of `read` (default USPTO_READ) as row dicts: `{PARENT: [...], child: [...]}`.

    Deliberately plain: the standard library's ElementTree over the whole (small) file, ElementPath
    lookups per field, Python conversions. Values are typed as the reader types them (int, date,
    str, list), empty or missing -> None."""
    spec = read or USPTO_READ
    tables: dict[str, list] = {PARENT: [], **{name: [] for name in spec.get("children", {})}}
    for data in _documents(Path(path)):
        root = ET.fromstring(data)
        header = {name: _value(root, _field(f)) for name, f in spec.get("header", {}).items()}
        for record in root.iter(spec["record"]):
            row = {name: _value(record, _field(f)) for name, f in spec["fields"].items()}
            tables[PARENT].append({**row, **header})
            for child, cspec in spec.get("children", {}).items():
                keys = cspec.get("parent_key") or [next(iter(spec["fields"]))]
                for element in record.findall(cspec["path"]):
                    values = {name: _value(element, _field(f)) for name, f in cspec["fields"].items()}
                    tables[child].append({**{k: row[k] for k in keys}, **values})
    return tables


def _field(spec: str | dict) -> dict:
    return {"path": spec} if isinstance(spec, str) else spec


def _value(element: ET.Element, spec: dict) -> Any:
    path, attr = spec["path"], None
    if "@" in path:
        path, attr = path.rsplit("@", 1)
        path = path.rstrip("/") or "."
    texts = []
    for hit in element.findall(path):
        texts.append(hit.get(attr) if attr is not None else "".join(hit.itertext()))
    values = [_typed(t, spec) for t in texts]
    if spec.get("repeated"):
        return values
    return values[0] if values else None


def _typed(text: str | None, spec: dict) -> Any:
    kind = spec.get("type", "string")
    if kind == "string":
        return text or None
    text = (text or "").strip()
    if not text:
        return None
    if kind in ("int", "long"):
        return int(text)
    if kind == "double":
        return float(text)
    if kind == "boolean":
        return text.lower() in ("true", "1")
    if kind.startswith("decimal"):
        return Decimal(text)
    fmt = spec.get("format")
    if kind == "date":
        return dt.datetime.strptime(text, fmt).date() if fmt else dt.date.fromisoformat(text)
    if kind == "timestamp":
        return dt.datetime.strptime(text, fmt) if fmt else dt.datetime.fromisoformat(text)
    raise ValueError(f"reference(): unsupported type {kind!r}")


def _documents(path: Path) -> list[bytes]:
    """The XML documents in a file: itself, gunzipped, or each `.xml` member of a zip, in order."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            return [archive.read(n) for n in archive.namelist() if n.lower().endswith(".xml")]
    data = path.read_bytes()
    return [gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data]
