/**
 * PostgreSQL result → step result JSON (API §9.3).
 *
 * The worker runs SQL steps with node-postgres configured to hand back every value as the raw text
 * PostgreSQL sent (no type parsers) and `rowMode: 'array'`, so column order and duplicate column
 * names survive. This module turns that into the compact result text
 * `{"rows":[{...},...],"row_count":N}`, built as text so int8 beyond 2^53 and numeric digits stay
 * exact and object keys keep SELECT-list order (JSON.stringify would move integer-like keys).
 */
import { DfError } from '../core/errors';
import { parseJsonOrdered, stringifyJson } from '../core/substitute';

export const OID = {
  bool: 16,
  name: 19,
  int8: 20,
  int2: 21,
  int4: 23,
  text: 25,
  json: 114,
  float4: 700,
  float8: 701,
  bpchar: 1042,
  varchar: 1043,
  date: 1082,
  timestamp: 1114,
  timestamptz: 1184,
  numeric: 1700,
  void: 2278,
  uuid: 2950,
  jsonb: 3802,
} as const;

/** The type OIDs a SQL step result may contain. */
export const SUPPORTED_TYPE_OIDS: ReadonlySet<number> = new Set<number>(Object.values(OID));

const SUPPORTED_LIST =
  'bool, int2, int4, int8, float4, float8, text, varchar, numeric, uuid, timestamptz, timestamp, date, jsonb, json, void';

/**
 * Names of common built-in types, used for the "unsupported type" message when the caller has no
 * catalog lookup. Array types are listed by their element name and rendered as `ELEM[]`.
 */
const BUILTIN_TYPE_NAMES: Record<number, string> = {
  17: 'bytea', 18: 'char', 24: 'regproc', 26: 'oid', 27: 'tid', 28: 'xid', 29: 'cid', 142: 'xml',
  600: 'point', 601: 'lseg', 602: 'path', 603: 'box', 604: 'polygon', 628: 'line', 650: 'cidr',
  718: 'circle', 774: 'macaddr8', 790: 'money', 829: 'macaddr', 869: 'inet', 1033: 'aclitem',
  1083: 'time', 1186: 'interval', 1266: 'timetz', 1560: 'bit', 1562: 'varbit', 1790: 'refcursor',
  2205: 'regclass', 2206: 'regtype', 2249: 'record', 2275: 'cstring', 2276: 'any', 2283: 'anyelement',
  3220: 'pg_lsn', 3614: 'tsvector', 3615: 'tsquery', 3904: 'int4range', 3906: 'numrange',
  3908: 'tsrange', 3910: 'tstzrange', 3912: 'daterange', 3926: 'int8range', 4072: 'jsonpath',
  4451: 'int4multirange', 5038: 'pg_snapshot', 5069: 'xid8',
  // arrays
  199: '_json', 1000: '_bool', 1001: '_bytea', 1002: '_char', 1003: '_name', 1005: '_int2',
  1007: '_int4', 1009: '_text', 1014: '_bpchar', 1015: '_varchar', 1016: '_int8', 1021: '_float4',
  1022: '_float8', 1028: '_oid', 1115: '_timestamp', 1182: '_date', 1183: '_time', 1185: '_timestamptz',
  1187: '_interval', 1231: '_numeric', 1270: '_timetz', 2951: '_uuid', 3807: '_jsonb', 1041: '_inet',
};

/** The upper-case display name of a type: `_int4` → `INT4[]`, unknown → `OID <n>`. */
export function displayTypeName(oid: number, typeName?: (oid: number) => string): string {
  let name: string | undefined;
  if (typeName) {
    try {
      name = typeName(oid);
    } catch {
      name = undefined;
    }
  }
  if (!name) name = BUILTIN_TYPE_NAMES[oid];
  if (!name) return `OID ${oid}`;
  if (name.startsWith('_') && name.length > 1) return name.slice(1).toUpperCase() + '[]';
  return name.toUpperCase();
}

// ---------------------------------------------------------------------------------------------
// Numbers
// ---------------------------------------------------------------------------------------------

/** JS's shortest round-trip text of a finite double, or `null` for NaN/±Infinity. */
function doubleJson(x: number): string {
  if (!Number.isFinite(x)) return 'null';
  return String(x);
}

export function formatFloat4(text: string): string {
  return doubleJson(Math.fround(parseFloat(text)));
}

export function formatFloat8(text: string): string {
  return doubleJson(parseFloat(text));
}

// ---------------------------------------------------------------------------------------------
// Date / time
// ---------------------------------------------------------------------------------------------

/** Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm). */
function daysFromCivil(y: number, m: number, d: number): number {
  y -= m <= 2 ? 1 : 0;
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const doy = Math.floor((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5) + d - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146097 + doe - 719468;
}

function civilFromDays(z: number): [number, number, number] {
  z += 719468;
  const era = Math.floor(z / 146097);
  const doe = z - era * 146097;
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36524) - Math.floor(doe / 146096)) / 365);
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const d = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const m = mp + (mp < 10 ? 3 : -9);
  return [yoe + era * 400 + (m <= 2 ? 1 : 0), m, d];
}

const pad2 = (n: number): string => String(n).padStart(2, '0');

/** chrono's year rendering: 4 digits within 0..=9999, else signed (`+10000`). */
function formatYear(y: number): string {
  if (y >= 0 && y <= 9999) return String(y).padStart(4, '0');
  return (y < 0 ? '-' : '+') + String(Math.abs(y)).padStart(4, '0');
}

/** Fractional digits (as sent, ≤ 9) → `''`, `.fff`, `.ffffff` or `.fffffffff` (chrono AutoSi). */
function formatFraction(digits: string): string {
  const ns = (digits + '000000000').slice(0, 9);
  if (/^0+$/.test(ns)) return '';
  if (ns.endsWith('000000')) return '.' + ns.slice(0, 3);
  if (ns.endsWith('000')) return '.' + ns.slice(0, 6);
  return '.' + ns;
}

const DATE_TIME_RE = /^(\d{4,})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?/;

interface ParsedDateTime {
  y: number;
  mo: number;
  d: number;
  h: number;
  mi: number;
  s: number;
  frac: string;
  rest: string;
}

function parseDateTime(text: string, what: string): ParsedDateTime {
  const m = DATE_TIME_RE.exec(text);
  if (!m) throw new DfError(`Failed to decode ${what} value '${text}'`);
  return {
    y: Number(m[1]),
    mo: Number(m[2]),
    d: Number(m[3]),
    h: Number(m[4]),
    mi: Number(m[5]),
    s: Number(m[6]),
    frac: m[7] ?? '',
    rest: text.slice(m[0].length),
  };
}

function rejectBc(text: string, what: string): void {
  if (/\sBC$/i.test(text)) {
    throw new DfError(`Unsupported ${what} value '${text}': dates before the common era (BC) cannot be represented in a step result`);
  }
}

function isInfinity(text: string): boolean {
  return text === 'infinity' || text === '-infinity';
}

/**
 * PostgreSQL ISO timestamptz text (`2024-06-15 14:30:00.5+02`, `...+05:30`, `...+05:45:30`) →
 * RFC 3339 in UTC with `+00:00`; `infinity`/`-infinity` → null; BC → DfError.
 */
export function formatTimestamptz(text: string): string | null {
  if (isInfinity(text)) return null;
  rejectBc(text, 'timestamptz');
  const p = parseDateTime(text, 'timestamptz');
  const off = /^\s*(?:([+-])(\d{2})(?::?(\d{2}))?(?::?(\d{2}))?|Z)$/.exec(p.rest);
  if (!off) throw new DfError(`Failed to decode timestamptz value '${text}'`);
  let offsetSeconds = 0;
  if (off[1]) {
    offsetSeconds = Number(off[2]) * 3600 + Number(off[3] ?? 0) * 60 + Number(off[4] ?? 0);
    if (off[1] === '-') offsetSeconds = -offsetSeconds;
  }
  const secs = daysFromCivil(p.y, p.mo, p.d) * 86400 + p.h * 3600 + p.mi * 60 + p.s - offsetSeconds;
  const days = Math.floor(secs / 86400);
  let sod = secs - days * 86400;
  const [y, mo, d] = civilFromDays(days);
  const h = Math.floor(sod / 3600);
  sod -= h * 3600;
  const mi = Math.floor(sod / 60);
  const s = sod - mi * 60;
  return `${formatYear(y)}-${pad2(mo)}-${pad2(d)}T${pad2(h)}:${pad2(mi)}:${pad2(s)}${formatFraction(p.frac)}+00:00`;
}

/** PostgreSQL ISO timestamp text → `YYYY-MM-DDTHH:MM:SS[.fff]`; infinity → null; BC → DfError. */
export function formatTimestamp(text: string): string | null {
  if (isInfinity(text)) return null;
  rejectBc(text, 'timestamp');
  const p = parseDateTime(text, 'timestamp');
  if (p.rest.trim() !== '') throw new DfError(`Failed to decode timestamp value '${text}'`);
  return `${formatYear(p.y)}-${pad2(p.mo)}-${pad2(p.d)}T${pad2(p.h)}:${pad2(p.mi)}:${pad2(p.s)}${formatFraction(p.frac)}`;
}

/** PostgreSQL ISO date text → `YYYY-MM-DD`; infinity → null; BC → DfError. */
export function formatDate(text: string): string | null {
  if (isInfinity(text)) return null;
  rejectBc(text, 'date');
  const m = /^(\d{4,})-(\d{2})-(\d{2})$/.exec(text);
  if (!m) throw new DfError(`Failed to decode date value '${text}'`);
  return `${formatYear(Number(m[1]))}-${m[2]}-${m[3]}`;
}

// ---------------------------------------------------------------------------------------------
// Values
// ---------------------------------------------------------------------------------------------

const str = (s: string): string => JSON.stringify(s);

/** JSON text of one non-null value of a supported type. */
function valueJson(oid: number, text: string, col: string): string {
  switch (oid) {
    case OID.bool:
      if (text === 't' || text === 'true') return 'true';
      if (text === 'f' || text === 'false') return 'false';
      throw new DfError(`Failed to decode column '${col}' as bool: '${text}'`);
    case OID.int2:
    case OID.int4:
    case OID.int8:
      if (!/^-?\d+$/.test(text)) throw new DfError(`Failed to decode column '${col}' as integer: '${text}'`);
      return text.replace(/^(-?)0+(?=\d)/, '$1');
    case OID.float4:
      return formatFloat4(text);
    case OID.float8:
      return formatFloat8(text);
    case OID.text:
    case OID.varchar:
    case OID.bpchar:
    case OID.name:
    case OID.numeric:
      return str(text);
    case OID.uuid:
      return str(text.toLowerCase());
    case OID.timestamptz: {
      const v = formatTimestamptz(text);
      return v === null ? 'null' : str(v);
    }
    case OID.timestamp: {
      const v = formatTimestamp(text);
      return v === null ? 'null' : str(v);
    }
    case OID.date: {
      const v = formatDate(text);
      return v === null ? 'null' : str(v);
    }
    case OID.json:
    case OID.jsonb:
      try {
        return stringifyJson(parseJsonOrdered(text));
      } catch (e) {
        throw new DfError(`Failed to decode column '${col}' as JSON: ${(e as Error).message}`);
      }
    case OID.void:
      return 'null';
    default:
      throw new Error(`unreachable: type ${oid}`);
  }
}

/** Types that decode alike, so duplicates of them do not count as a type mismatch. */
function typeFamily(oid: number): number {
  if (oid === OID.varchar || oid === OID.bpchar || oid === OID.name) return OID.text;
  return oid;
}

/**
 * Result JSON text of a SQL step (API §9.3). `rows` hold the raw text values (null = SQL NULL) in
 * column order. Throws DfError for unsupported column types (only when at least one row came back,
 * as the original checks types while decoding rows).
 */
export function resultJson(
  fields: { name: string; dataTypeID: number }[],
  rows: (string | null)[][],
  typeName?: (oid: number) => string,
): string {
  // Duplicate names: the key appears once, at the first column's position, with its value.
  const firstIndex = new Map<string, number>();
  const keyCols: number[] = [];
  fields.forEach((f, i) => {
    if (!firstIndex.has(f.name)) {
      firstIndex.set(f.name, i);
      keyCols.push(i);
    }
  });

  if (rows.length > 0) {
    fields.forEach((f) => {
      if (!SUPPORTED_TYPE_OIDS.has(f.dataTypeID)) {
        throw new DfError(
          `Unsupported column type '${displayTypeName(f.dataTypeID, typeName)}' for column '${f.name}'. Supported types: ${SUPPORTED_LIST}.`,
        );
      }
      const first = fields[firstIndex.get(f.name) as number];
      if (typeFamily(first.dataTypeID) !== typeFamily(f.dataTypeID)) {
        throw new DfError(
          `Failed to decode column '${f.name}': duplicate column names with different types ` +
            `(${displayTypeName(first.dataTypeID, typeName)} and ${displayTypeName(f.dataTypeID, typeName)})`,
        );
      }
    });
  }

  const keyTexts = keyCols.map((i) => str(fields[i].name) + ':');
  const out: string[] = [];
  for (const row of rows) {
    const parts: string[] = [];
    keyCols.forEach((i, k) => {
      const v = row[i];
      parts.push(keyTexts[k] + (v === null || v === undefined ? 'null' : valueJson(fields[i].dataTypeID, v, fields[i].name)));
    });
    out.push('{' + parts.join(',') + '}');
  }
  return `{"rows":[${out.join(',')}],"row_count":${rows.length}}`;
}
