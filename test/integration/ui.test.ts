/**
 * `pg-durable ui` at the HTTP level: the list (filters, counts, keyset pages), an instance's page
 * data, two roles each seeing only their own instances, CSRF and Host protection, read-only mode,
 * escaping of user content in the HTML shell and the JSON, and the CLI command (no password in its
 * output). The dashboard runs in this process, connected as a tenant; one real worker runs the
 * workflows. Browser-level tests: ui-browser.test.ts.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startUiServer, type UiServer } from '../../src/ui/server';
import { asRole, createTenant, freshDatabase, scalar, url } from '../support/db';
import { eventually, startWorker, waitFor } from '../support/worker';

let db: string;
let alice: string;
let bob: string;
let uiA: UiServer;
let uiB: UiServer;
const XSS_LABEL = '<script>window.__xss=1</script>"\'&';
const XSS_SQL = `SELECT '<img src=x onerror="window.__xss=1">' AS x`;

const start = (role: string, expr: string, label: string | null = null) =>
  asRole(db, role, (c) => scalar<string>(c, `SELECT df.start(${expr}, $1)`, [label]));

async function getJson(ui: UiServer, path: string, headers: Record<string, string> = {}) {
  const res = await fetch(new URL(path, ui.url), { headers });
  const text = await res.text();
  return { status: res.status, headers: res.headers, text, body: text.startsWith('{') ? JSON.parse(text) : null };
}

async function post(ui: UiServer, path: string, body: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(new URL(path, ui.url), {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': ui.token, ...headers },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as { error?: string; result?: string } };
}

let aliceIds: string[] = [];
let bobId: string;
let xssId: string;
let signalId: string;

beforeAll(async () => {
  db = await freshDatabase('ui');
  alice = await createTenant(db, 'alice');
  bob = await createTenant(db, 'bob');
  // Pending instances (no worker yet): newest first is the reverse of creation order.
  for (let i = 0; i < 5; i++) aliceIds.push(await start(alice, `'SELECT ${i} AS n'`, i % 2 === 0 ? 'even' : 'odd'));
  bobId = await start(bob, "'SELECT 1'", 'bobs');
  uiA = await startUiServer({ databaseUrl: url(db, alice), port: 0 });
  uiB = await startUiServer({ databaseUrl: url(db, bob), port: 0 });
});

afterAll(async () => {
  await uiA?.close();
  await uiB?.close();
});

describe('the instance list', () => {
  it('shows the role its own instances, newest first, with counts by status', async () => {
    const r = await getJson(uiA, '/api/instances');
    expect(r.status).toBe(200);
    expect(r.body.rows.map((x: { instance_id: string }) => x.instance_id)).toEqual([...aliceIds].reverse());
    expect(r.body.counts).toEqual({ pending: 5, running: 0, completed: 0, failed: 0, cancelled: 0 });
    expect(r.body.next).toBeNull();
    expect(uiA.role).toBe(alice);
  });

  it('filters by status and label', async () => {
    const even = await getJson(uiA, '/api/instances?label=even');
    expect(even.body.rows.map((x: { instance_id: string }) => x.instance_id)).toEqual([aliceIds[4], aliceIds[2], aliceIds[0]]);
    expect(even.body.counts.pending).toBe(3);
    expect((await getJson(uiA, '/api/instances?status=completed')).body.rows).toEqual([]);
    expect((await getJson(uiA, '/api/instances?status=bogus')).status).toBe(400);
  });

  it('pages with the df.list_instances cursor', async () => {
    const seen: string[] = [];
    let after = '';
    for (let pages = 0; pages < 10; pages++) {
      const r = await getJson(uiA, `/api/instances?limit=2${after ? `&after=${after}` : ''}`);
      seen.push(...r.body.rows.map((x: { instance_id: string }) => x.instance_id));
      if (!r.body.next) break;
      after = r.body.next;
    }
    expect(seen).toEqual([...aliceIds].reverse());
    expect((await getJson(uiA, '/api/instances?after=zz')).status).toBe(400);
  });
});

describe('two roles', () => {
  it('each dashboard sees only its role\'s instances', async () => {
    const b = await getJson(uiB, '/api/instances');
    expect(b.body.rows.map((x: { instance_id: string }) => x.instance_id)).toEqual([bobId]);
    expect(b.body.counts.pending).toBe(1);
    expect((await getJson(uiB, `/api/instances/${aliceIds[0]}`)).status).toBe(404);
    expect((await getJson(uiA, `/api/instances/${bobId}`)).status).toBe(404);
  });

  it("one role cannot act on another's instance", async () => {
    const r = await post(uiB, `/api/instances/${aliceIds[0]}/cancel`, {});
    expect(r.status).toBeGreaterThanOrEqual(400);
    expect(await asRole(db, alice, (c) => scalar(c, 'SELECT status FROM df.instances WHERE id = $1', [aliceIds[0]]))).toBe('pending');
  });
});

describe('an instance, run by a worker', () => {
  beforeAll(async () => {
    xssId = await start(alice, `${pg.escapeLiteral(XSS_SQL)} ~> 'SELECT 2 AS two'`, XSS_LABEL);
    signalId = await start(alice, "'SELECT 1 AS one' ~> df.wait_for_signal('go') ~> 'SELECT 3 AS three'", 'waits');
    startWorker(url(db));
    await asRole(db, alice, async (c) => {
      expect(await waitFor(c, xssId)).toBe('completed');
    });
    await eventually(async () => {
      const d = await getJson(uiA, `/api/instances/${signalId}`);
      return d.body.signals.waiting.length === 1;
    }, 20_000, 'the signal wait');
  });

  it('has the graph (Mermaid from the explain model), nodes, runs and executions', async () => {
    const r = await getJson(uiA, `/api/instances/${xssId}`);
    expect(r.status).toBe(200);
    const d = r.body;
    expect(d.instance).toMatchObject({ id: xssId, label: XSS_LABEL, status: 'completed', execution: 1 });
    expect(d.mermaid).toMatch(/^flowchart LR/); // renderMermaid's tree, laid out left to right
    expect(d.mermaid).toContain('classDef completed');
    expect(d.mermaid).not.toContain('<img');
    expect(d.nodes.map((n: { inferred_status: string }) => n.inferred_status)).toEqual(['completed', 'completed', 'completed']);
    expect(d.nodes.some((n: { result: string }) => (n.result ?? '').includes('<img src=x'))).toBe(true);
    expect(d.runs.length).toBeGreaterThanOrEqual(2);
    for (const run of d.runs) expect(run.finished_at).not.toBeNull();
    expect(d.executions[0]).toMatchObject({ execution_id: 1 });
    expect(d.explain).toContain(`Instance: ${xssId}`);
  });

  it('shows the signal being waited for, and a signal sent through the API finishes the workflow', async () => {
    const d = (await getJson(uiA, `/api/instances/${signalId}`)).body;
    expect(d.signals.waiting).toMatchObject([{ signal_name: 'go' }]);
    const r = await post(uiA, `/api/instances/${signalId}/signal`, { name: 'go', payload: { ok: true } });
    expect(r).toEqual({ status: 200, body: { result: 'OK' } });
    expect(await asRole(db, alice, (c) => waitFor(c, signalId))).toBe('completed');
    const after = (await getJson(uiA, `/api/instances/${signalId}`)).body;
    expect(after.signals.inbox).toMatchObject([{ signal_name: 'go', payload: '{"ok":true}' }]);
    expect(after.signals.waiting).toEqual([]);
  });

  it('a signal to an ended instance comes back as the database error', async () => {
    const r = await post(uiA, `/api/instances/${xssId}/signal`, { name: 'go', payload: 1 });
    expect(r.status).toBe(400);
    expect(r.body.error).toMatch(/already completed/);
  });
});

describe('CSRF, Host and read-only', () => {
  it('refuses a POST without the token, with a wrong one, a foreign Origin, a form content type or cross-site', async () => {
    const id = await start(alice, "df.wait_for_signal('never')");
    const path = `/api/instances/${id}/cancel`;
    const attempts: Record<string, string>[] = [
      { 'X-CSRF-Token': '' },
      { 'X-CSRF-Token': 'x'.repeat(uiA.token.length) },
      { Origin: 'http://evil.example' },
      { 'Content-Type': 'text/plain' },
      { 'Sec-Fetch-Site': 'cross-site' },
    ];
    for (const headers of attempts) {
      const r = await post(uiA, path, {}, headers);
      expect(r.status, JSON.stringify(headers)).toBe(403);
    }
    expect(await asRole(db, alice, (c) => scalar(c, 'SELECT status FROM df.instances WHERE id = $1', [id]))).not.toBe('cancelled');
    const ok = await post(uiA, path, { reason: 'from the test' }, { Origin: new URL(uiA.url).origin });
    expect(ok.status).toBe(200);
    expect(await asRole(db, alice, (c) => scalar(c, 'SELECT status FROM df.instances WHERE id = $1', [id]))).toBe('cancelled');
  });

  it('answers only to its own Host names (DNS rebinding)', async () => {
    const port = uiA.port;
    const raw = (host: string) =>
      new Promise<number>((resolve, reject) => {
        import('node:http').then((http) => {
          const req = http.request({ host: '127.0.0.1', port, path: '/api/instances', headers: { Host: host } }, (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          });
          req.on('error', reject);
          req.end();
        }, reject);
      });
    expect(await raw('evil.example')).toBe(421);
    expect(await raw(`evil.example:${port}`)).toBe(421);
    expect(await raw(`localhost:${port}`)).toBe(200);
    const proxied = await startUiServer({ databaseUrl: url(db, alice), port: 0, allowedHosts: ['durable.example.com'] });
    try {
      const r = await new Promise<number>((resolve, reject) => {
        import('node:http').then((http) => {
          const req = http.request({ host: '127.0.0.1', port: proxied.port, path: '/', headers: { Host: 'durable.example.com' } }, (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          });
          req.on('error', reject);
          req.end();
        }, reject);
      });
      expect(r).toBe(200);
    } finally {
      await proxied.close();
    }
  });

  it('--read-only refuses actions and tells the page', async () => {
    const ro = await startUiServer({ databaseUrl: url(db, alice), port: 0, readOnly: true });
    const id = await start(alice, "df.wait_for_signal('never')");
    try {
      const html = await (await fetch(ro.url)).text();
      expect(html).toContain('<meta name="pgd-read-only" content="true">');
      const r = await post(ro, `/api/instances/${id}/cancel`, {});
      expect(r.status).toBe(403);
      expect(r.body.error).toMatch(/read-only/);
      expect((await getJson(ro, '/api/me')).body.read_only).toBe(true);
      expect(await asRole(db, alice, (c) => scalar(c, 'SELECT status FROM df.instances WHERE id = $1', [id]))).not.toBe('cancelled');
    } finally {
      await ro.close();
    }
  });
});

describe('escaping', () => {
  it('the page shell never carries user content; JSON escapes markup; strict headers everywhere', async () => {
    for (const path of ['/', `/i/${xssId}`]) {
      const res = await fetch(new URL(path, uiA.url));
      const html = await res.text();
      expect(html).not.toContain('__xss');
      expect(html).not.toContain(XSS_LABEL);
      expect(res.headers.get('content-security-policy')).toMatch(/script-src 'self'/);
      expect(res.headers.get('x-frame-options')).toBe('DENY');
    }
    for (const path of ['/api/instances', `/api/instances/${xssId}`]) {
      const r = await getJson(uiA, path);
      expect(r.headers.get('content-type')).toMatch(/^application\/json/);
      expect(r.headers.get('x-content-type-options')).toBe('nosniff');
      expect(r.text).toContain('__xss'); // the data is there ...
      expect(r.text).not.toMatch(/[<>]/); // ... with every < and > escaped
    }
    const list = (await getJson(uiA, '/api/instances')).body;
    expect(list.rows.find((x: { instance_id: string }) => x.instance_id === xssId).label).toBe(XSS_LABEL);
  });

  it('serves only known files (no path traversal)', async () => {
    for (const path of ['/static/../../package.json', '/static/%2e%2e/%2e%2e/package.json', '/vendor/../page/index.html', '/static/index.html']) {
      expect((await fetch(new URL(path, uiA.url))).status, path).toBe(404);
    }
    expect((await fetch(new URL('/static/app.js', uiA.url))).status).toBe(200);
    const mermaid = await fetch(new URL('/vendor/mermaid.min.js', uiA.url), { headers: { 'Accept-Encoding': 'gzip' } });
    expect(mermaid.status).toBe(200);
  });
});

describe('pg-durable ui (the command)', () => {
  let proc: ChildProcess | null = null;
  afterAll(() => {
    proc?.kill('SIGKILL');
  });

  it('prints where it listens and as whom, never the password', async () => {
    const withPassword = url(db, alice).replace(`${alice}@`, `${alice}:s3cret-pw@`); // trust auth ignores it
    proc = spawn(process.execPath, ['dist/cli.js', 'ui', '--database-url', withPassword, '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    await eventually(async () => /http:\/\/127\.0\.0\.1:\d+\//.test(out), 15_000, 'the dashboard to start');
    expect(out).toContain(`role ${alice}`);
    expect(out).not.toContain('s3cret-pw');
    const address = /(http:\/\/127\.0\.0\.1:\d+\/)/.exec(out)![1];
    const r = await fetch(new URL('/api/instances', address));
    expect(r.status).toBe(200);
    proc.kill('SIGTERM');
    const [code] = await once(proc, 'exit');
    expect(code).toBe(0);
    expect(out).not.toContain('s3cret-pw');
    proc = null;
  });
});
