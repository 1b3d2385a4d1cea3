import { describe, it, expect } from 'vitest';
import {
  bodyPreview,
  classifyBody,
  decodeBase64Strict,
  defaultEgressPolicy,
  extractHost,
  hostAllowed,
  isBlockedAddress,
  isIpLiteral,
  isTextualMediaType,
  urlScheme,
} from '../../src/worker/http';

const strict = { allowLoopback: false, allowPrivate: false };
const loop = { allowLoopback: true, allowPrivate: false };
const priv = { allowLoopback: false, allowPrivate: true };
const both = { allowLoopback: true, allowPrivate: true };

describe('defaultEgressPolicy', () => {
  it('is closed by default', () => {
    expect(defaultEgressPolicy('0.2.6')).toEqual({
      allowLoopback: false,
      allowPrivate: false,
      allowIpLiterals: false,
      allowedHosts: null,
      maxRetries: 2,
      retryBaseMs: 500,
      userAgent: 'pg_durable/0.2.6',
    });
  });
});

describe('isBlockedAddress', () => {
  // [address, blocked strict, blocked with allowLoopback, blocked with allowPrivate, blocked with both]
  const table: [string, boolean, boolean, boolean, boolean][] = [
    // cloud metadata / link-local: always
    ['169.254.169.254', true, true, true, true],
    ['169.254.0.1', true, true, true, true],
    ['169.255.0.1', false, false, false, false],
    ['169.253.255.255', false, false, false, false],
    // loopback
    ['127.0.0.1', true, false, true, false],
    ['127.255.255.254', true, false, true, false],
    ['::1', true, false, true, false],
    ['0:0:0:0:0:0:0:1', true, false, true, false],
    // this network
    ['0.0.0.0', true, true, true, true],
    ['0.1.2.3', true, true, true, true],
    ['::', true, true, true, true],
    // RFC 1918
    ['10.0.0.1', true, true, false, false],
    ['10.255.255.255', true, true, false, false],
    ['11.0.0.1', false, false, false, false],
    ['172.15.255.255', false, false, false, false],
    ['172.16.0.0', true, true, false, false],
    ['172.31.255.255', true, true, false, false],
    ['172.32.0.1', false, false, false, false],
    ['192.168.0.1', true, true, false, false],
    ['192.169.0.1', false, false, false, false],
    // CGNAT 100.64.0.0/10
    ['100.63.255.255', false, false, false, false],
    ['100.64.0.0', true, true, false, false],
    ['100.127.255.255', true, true, false, false],
    ['100.128.0.0', false, false, false, false],
    // IPv6 link-local (always), ULA (private)
    ['fe80::1', true, true, true, true],
    ['febf::1', true, true, true, true],
    ['fe80::1%eth0', true, true, true, true],
    ['fc00::1', true, true, false, false],
    ['fd12::1', true, true, false, false],
    ['fd12:3456:789a::1', true, true, false, false],
    ['fd00:ec2::254', true, true, true, true],
    // IPv4-mapped, checked as IPv4 (dotted and hex forms)
    ['::ffff:127.0.0.1', true, false, true, false],
    ['::ffff:7f00:1', true, false, true, false],
    ['::FFFF:7F00:0001', true, false, true, false],
    ['::ffff:10.0.0.1', true, true, false, false],
    ['::ffff:a00:1', true, true, false, false],
    ['::ffff:169.254.169.254', true, true, true, true],
    ['::ffff:8.8.8.8', false, false, false, false],
    ['0:0:0:0:0:ffff:127.0.0.1', true, false, true, false],
    // IPv4-compatible, NAT64, 6to4 embeddings
    ['::127.0.0.1', true, false, true, false],
    ['::a9fe:a9fe', true, true, true, true],
    ['64:ff9b::127.0.0.1', true, false, true, false],
    ['64:ff9b::a9fe:a9fe', true, true, true, true],
    ['64:ff9b::808:808', false, false, false, false],
    ['2002:7f00:1::', true, false, true, false],
    ['2002:0808:0808::1', false, false, false, false],
    // public
    ['8.8.8.8', false, false, false, false],
    ['1.1.1.1', false, false, false, false],
    ['2606:4700::1111', false, false, false, false],
    ['2001:4860:4860::8888', false, false, false, false],
    // not an address: fail closed
    ['example.com', true, true, true, true],
    ['256.1.1.1', true, true, true, true],
    ['1.2.3', true, true, true, true],
    ['1::2::3', true, true, true, true],
    ['127.1', true, true, true, true], // short and numeric forms are URL syntax, never resolver output
    ['2130706433', true, true, true, true],
    // ranges ipaddr.js names that we leave public, and the local-use NAT64 prefix (never better than private)
    ['224.0.0.1', false, false, false, false],
    ['64:ff9b:1::808:808', true, true, false, false],
    ['64:ff9b:1::7f00:1', true, false, true, false],
    ['fec0::1', true, true, false, false],
    ['2001:0:4136:e378:8000:63bf:80ff:fffe', true, false, true, false], // Teredo, client 127.0.0.1
    ['', true, true, true, true],
  ];
  it.each(table)('%s', (ip, s, l, p, b) => {
    expect(isBlockedAddress(ip, strict)).toBe(s);
    expect(isBlockedAddress(ip, loop)).toBe(l);
    expect(isBlockedAddress(ip, priv)).toBe(p);
    expect(isBlockedAddress(ip, both)).toBe(b);
  });
});

describe('isIpLiteral (the bare-IP rule)', () => {
  it.each([
    ['127.0.0.1', true], ['127.1', true], ['2130706433', true], ['0x7f.1', true], ['0177.0.0.1', true], ['8.8.8.8', true],
    ['[::1]', true], ['::1', true], ['::ffff:127.0.0.1', true], ['fe80::1%eth0', true], ['2606:4700::1111', true], ['1.2.3.4.', true],
    ['example.com', false], ['localhost', false], ['1.2.3.4.example', false], ['', false], ['0x7g.1', false],
  ])('%s -> %s', (host, expected) => {
    expect(isIpLiteral(host)).toBe(expected);
  });
});

describe('URL helpers', () => {
  it('urlScheme', () => {
    expect(urlScheme('HTTPS://x')).toBe('https');
    expect(urlScheme('file:///etc/passwd')).toBe('file');
    expect(urlScheme('ftp://x')).toBe('ftp');
    expect(urlScheme('no-scheme')).toBe('no-scheme');
  });

  it('extractHost', () => {
    expect(extractHost('https://api.example.com/a?b#c')).toBe('api.example.com');
    expect(extractHost('https://user:pw@host.example:8443/x')).toBe('host.example');
    expect(extractHost('https://a@b@host.example')).toBe('host.example');
    expect(extractHost('http://[::1]:8080/x')).toBe('::1');
    expect(extractHost('http://host?x=@evil')).toBe('host');
    expect(extractHost('http:///path')).toBeUndefined();
    expect(extractHost('http://[::1/x')).toBeUndefined();
    expect(extractHost('nourl')).toBeUndefined();
  });

  it('hostAllowed', () => {
    expect(hostAllowed('api.example.com', ['example.com'])).toBe(true);
    expect(hostAllowed('example.com', ['example.com'])).toBe(true);
    expect(hostAllowed('API.Example.COM', ['example.com'])).toBe(true);
    expect(hostAllowed('badexample.com', ['example.com'])).toBe(false);
    expect(hostAllowed('example.com.evil.net', ['example.com'])).toBe(false);
    expect(hostAllowed('x.y', [])).toBe(false);
  });
});

describe('body classification and previews', () => {
  it('textual content types', () => {
    for (const t of ['text/plain', 'text/html', 'application/json', 'application/problem+json', 'image/svg+xml', 'application/x-yaml', 'application/graphql']) {
      expect(isTextualMediaType(t)).toBe(true);
    }
    for (const t of ['application/octet-stream', 'image/png', 'application/pdf']) expect(isTextualMediaType(t)).toBe(false);
  });

  it('charset honoured; sniffing without content type', () => {
    expect(classifyBody(Buffer.from([0x63, 0x61, 0x66, 0xe9]), 'text/plain; charset=ISO-8859-1')).toEqual({ body: 'café', encoding: 'text' });
    expect(classifyBody(Buffer.from([0x63, 0x61, 0x66, 0xe9]), 'text/plain; charset="latin1", text/html')).toEqual({ body: 'café', encoding: 'text' });
    expect(classifyBody(Buffer.from('café', 'utf8'), 'application/json;charset=utf-8')).toEqual({ body: 'café', encoding: 'text' });
    expect(classifyBody(Buffer.from('plain', 'utf8'), undefined)).toEqual({ body: 'plain', encoding: 'text' });
    expect(classifyBody(Buffer.from([0x61, 0x00, 0x62]), undefined)).toEqual({ body: 'YQBi', encoding: 'base64' });
    expect(classifyBody(Buffer.from([0xff, 0xfe, 0x01]), 'application/octet-stream')).toEqual({ body: '//4B', encoding: 'base64' });
  });

  it('previews', () => {
    expect(bodyPreview('short', 'text')).toBe('short');
    const long = 'x'.repeat(600);
    expect(bodyPreview(long, 'text')).toBe('x'.repeat(512) + '... [truncated, 600 bytes total]');
    expect(bodyPreview('é'.repeat(300), 'text')).toBe('é'.repeat(256) + '... [truncated, 600 bytes total]');
    expect(bodyPreview('A'.repeat(700), 'base64')).toBe('A'.repeat(512) + '... [truncated, 700 base64 characters total]');
  });
});

describe('decodeBase64Strict', () => {
  it('decodes standard base64 with whitespace', () => {
    expect(decodeBase64Strict('aGVs\nbG8g d29y bGQ=').toString()).toBe('hello world');
    expect(decodeBase64Strict('').length).toBe(0);
  });
  it('rejects invalid input', () => {
    expect(() => decodeBase64Strict('aGVsbG8-')).toThrow('Invalid symbol 45, offset 7.');
    expect(() => decodeBase64Strict('aGVsbG8')).toThrow('Invalid padding');
    expect(() => decodeBase64Strict('aGVsb')).toThrow('Invalid input length.');
    expect(() => decodeBase64Strict('a=bc')).toThrow(/Invalid symbol 61/);
    expect(() => decodeBase64Strict('YR==')).toThrow(/Invalid last symbol/);
  });
});
