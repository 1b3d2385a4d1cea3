import { describe, expect, it } from 'vitest';
import { decodeCursor, encodeCursor, utf8Decode } from '../../src/core/cursor';

const hex = (s: string): string => Buffer.from(s, 'utf8').toString('hex');

describe('list_instances cursor (API §10.2)', () => {
  it('is the lower-case hex of v1|<created_at>|<id> and decodes back', () => {
    const c = { createdAt: '2026-06-04T16:36:38.594906+00', id: '393f09e0' };
    const text = encodeCursor(c);
    expect(text).toBe(hex('v1|2026-06-04T16:36:38.594906+00|393f09e0'));
    expect(text).toMatch(/^[0-9a-f]+$/);
    expect(decodeCursor(text)).toEqual(c);
    expect(decodeCursor(text.toUpperCase())).toEqual(c);
    expect(decodeCursor(hex('v1|2026-06-04T16:36:38.594906+05:30|a|b'))).toEqual({ createdAt: '2026-06-04T16:36:38.594906+05:30', id: 'a|b' });
  });

  it.each([
    ['empty', ''],
    ['over 512 characters', 'a'.repeat(514)],
    ['odd length', 'abc'],
    ['not hex', 'zz'],
    ['not UTF-8', 'c328'],
    ['overlong UTF-8', hex('v1|') + 'c0af'],
    ['truncated UTF-8', hex('v1|x|') + 'e282'],
    ['version', hex('v2|2026-06-04T16:36:38.594906+00|393f09e0')],
    ['empty version', hex('|2026-06-04T16:36:38.594906+00|393f09e0')],
    ['empty timestamp', hex('v1||393f09e0')],
    ['empty id', hex('v1|2026-06-04T16:36:38.594906+00|')],
    ['two components', hex('v1|2026-06-04T16:36:38.594906+00')],
    ['milliseconds', hex('v1|2026-06-04T16:36:38.594+00|393f09e0')],
    ['no offset', hex('v1|2026-06-04T16:36:38.594906|393f09e0')],
    ['offset with seconds', hex('v1|2026-06-04T16:36:38.594906+00:00:00|393f09e0')],
  ])('rejects %s', (_what, text) => {
    expect(decodeCursor(text)).toBeNull();
  });

  it('decodes UTF-8 strictly', () => {
    expect(utf8Decode([...Buffer.from('é€😀', 'utf8')])).toBe('é€😀');
    expect(utf8Decode([0xed, 0xa0, 0x80])).toBeNull(); // surrogate
    expect(utf8Decode([0xf4, 0x90, 0x80, 0x80])).toBeNull(); // > U+10FFFF
    expect(utf8Decode([0x80])).toBeNull();
  });
});
