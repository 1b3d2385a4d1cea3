/**
 * The keyset cursor of the paginated df.list_instances (API §10.2): lower-case hex of the UTF-8
 * text `v1|<created_at as YYYY-MM-DD"T"HH24:MI:SS.USOF>|<instance id>` of a page's last row.
 * Filters are not part of the cursor; callers pass them again with every page.
 */

export interface ListCursor {
  /** created_at exactly as to_char(created_at, 'YYYY-MM-DD"T"HH24:MI:SS.USOF') printed it. */
  createdAt: string;
  id: string;
}

export const MAX_CURSOR_LENGTH = 512;
const TIMESTAMP = /^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}[+-][0-9]{2}(:[0-9]{2})?$/;

function utf8Encode(s: string): number[] {
  const out: number[] = [];
  for (const ch of s) {
    const c = ch.codePointAt(0) as number;
    if (c < 0x80) out.push(c);
    else if (c < 0x800) out.push(0xc0 | (c >> 6), 0x80 | (c & 0x3f));
    else if (c < 0x10000) out.push(0xe0 | (c >> 12), 0x80 | ((c >> 6) & 0x3f), 0x80 | (c & 0x3f));
    else out.push(0xf0 | (c >> 18), 0x80 | ((c >> 12) & 0x3f), 0x80 | ((c >> 6) & 0x3f), 0x80 | (c & 0x3f));
  }
  return out;
}

/** Strict UTF-8 decoding (no overlong forms, surrogates or code points above U+10FFFF); null if invalid. */
export function utf8Decode(bytes: number[]): string | null {
  let out = '';
  for (let i = 0; i < bytes.length; ) {
    const b = bytes[i];
    let need: number;
    let cp: number;
    let min: number;
    if (b < 0x80) {
      out += String.fromCharCode(b);
      i++;
      continue;
    } else if ((b & 0xe0) === 0xc0) {
      need = 1; cp = b & 0x1f; min = 0x80;
    } else if ((b & 0xf0) === 0xe0) {
      need = 2; cp = b & 0x0f; min = 0x800;
    } else if ((b & 0xf8) === 0xf0) {
      need = 3; cp = b & 0x07; min = 0x10000;
    } else {
      return null;
    }
    if (i + need >= bytes.length) return null;
    for (let k = 1; k <= need; k++) {
      const c = bytes[i + k];
      if ((c & 0xc0) !== 0x80) return null;
      cp = (cp << 6) | (c & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return null;
    out += String.fromCodePoint(cp);
    i += need + 1;
  }
  return out;
}

export function encodeCursor(cursor: ListCursor): string {
  return utf8Encode(`v1|${cursor.createdAt}|${cursor.id}`)
    .map((b) => (b < 16 ? '0' : '') + b.toString(16))
    .join('');
}

/**
 * Decodes and validates a cursor; null for every invalid case of §10.2: empty, longer than 512
 * characters, odd length, not hex, not UTF-8, version other than v1, an empty component, or a
 * timestamp not in the cursor's format.
 */
export function decodeCursor(text: string): ListCursor | null {
  if (text.length === 0 || text.length > MAX_CURSOR_LENGTH || text.length % 2 !== 0) return null;
  if (!/^[0-9a-fA-F]*$/.test(text)) return null;
  const bytes: number[] = [];
  for (let i = 0; i < text.length; i += 2) bytes.push(parseInt(text.slice(i, i + 2), 16));
  const decoded = utf8Decode(bytes);
  if (decoded === null) return null;
  const first = decoded.indexOf('|');
  const second = first < 0 ? -1 : decoded.indexOf('|', first + 1);
  if (second < 0) return null;
  const version = decoded.slice(0, first);
  const createdAt = decoded.slice(first + 1, second);
  const id = decoded.slice(second + 1);
  if (version !== 'v1' || createdAt === '' || id === '') return null;
  if (!TIMESTAMP.test(createdAt)) return null;
  return { createdAt, id };
}
