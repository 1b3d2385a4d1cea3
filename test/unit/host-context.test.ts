/**
 * The plv8 host reports an uncaught exception with plv8 3.x's CONTEXT rule (js_error::init in
 * plv8.cc): the error's own `context` property, then `<function>() LINE <n>: <source line>` of
 * the throw site, where <function> is the bare name of the function whose code threw and <n> is
 * counted in its source as PostgreSQL stores it. Cases and expected texts are what plv8 3.2 prints
 * (psql transcripts of real plv8). Driven over the host's own protocol, without PostgreSQL.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const LONG = `var _p="${'A'.repeat(1900)}";globalThis.x=function(){throw new Error('deep')};globalThis.y=function(){return _p.length};`;

const fn = (sql: string, body: string, args: string[] = []) => ({
  sql, key: `${sql}(${args.map(() => 'text').join(',')})`, args: args.map((name) => ({ name, type: 'text' })), returns: 'text', body,
});

const SPEC = {
  hash: 'test',
  // plv8 stores a loader like ours with a newline after the opening dollar quote.
  loader: `\n// 1\n// 2\n// 3\n${LONG}\nreturn 1;\n`,
  chunks: {},
  functions: [
    fn('public.f1', 'var a = 1;\nvar b = 2;\nthrow new Error(\'boom\');\nreturn a + b;'),
    fn('public.f1b', '\nvar a = 1;\nvar b = 2;\nthrow new Error(\'boom\');'),
    fn('public.caller4', "plv8.find_function('df._pgd_load')();\nreturn globalThis.x();"),
    fn('public.caller5_same', "plv8.find_function('df._pgd_load')();\ntry {\n  return globalThis.x();\n} catch (e) {\n  throw e;\n}"),
    fn('public.caller5_new', "plv8.find_function('df._pgd_load')();\ntry {\n  return globalThis.x();\n} catch (e) {\n  throw new Error(e.message);\n}"),
    fn('public.f2_full', "var e = new Error('bad param'); e.code = 50856066;\ne.detail = 'the detail'; e.hint = 'the hint'; e.context = 'the context';\nthrow e;"),
    fn('public.f6', "var a = 1;\nplv8.execute('SELECT 1/0');\nreturn a;"),
    fn('public.f7', "var a = 1;\nthrow 'oops';"),
  ],
};

let host: ChildProcessWithoutNullStreams;
let lines: AsyncIterableIterator<string>;

beforeAll(() => {
  const dir = mkdtempSync(join(tmpdir(), 'pgd-host-'));
  const file = join(dir, 'functions.json');
  writeFileSync(file, JSON.stringify(SPEC));
  host = spawn(process.execPath, [join(__dirname, '../../dist/plv8-host.cjs'), file]);
  lines = createInterface({ input: host.stdout })[Symbol.asyncIterator]();
});

afterAll(() => {
  host.stdin.end();
  host.kill();
});

/** Calls a function; answers plv8.execute requests with a division-by-zero error, as PostgreSQL would. */
async function call(name: string): Promise<Record<string, unknown>> {
  host.stdin.write(`${JSON.stringify({ op: 'call', fn: `${name}()`, args: [] })}\n`);
  for (;;) {
    const { value } = await lines.next();
    const msg = JSON.parse(value as string) as Record<string, unknown>;
    if (msg.op === 'execute') {
      host.stdin.write(`${JSON.stringify({ op: 'result', ok: false, message: 'division by zero', sqlstate: '22012' })}\n`);
      continue;
    }
    return msg;
  }
}

describe("the plv8 host's error CONTEXT follows plv8 3.x", () => {
  it('names the function and the line of the throw, counted from the first line of its source', async () => {
    expect(await call('public.f1')).toMatchObject({ op: 'error', message: 'boom', context: "f1() LINE 3: throw new Error('boom');" });
    expect((await call('public.f1b')).context).toBe("f1b() LINE 4: throw new Error('boom');");
  });

  it('points into the function whose code threw, printing its whole source line (the bundle dump users saw)', async () => {
    const out = await call('public.caller4');
    expect(out).toMatchObject({ message: 'deep', context: `_pgd_load() LINE 5: ${LONG}` });
    expect((out.context as string).length).toBe('_pgd_load() LINE 5: '.length + LONG.length);
  });

  it('moves to the caller when the caller throws again, the same error or a new one', async () => {
    expect((await call('public.caller5_same')).context).toBe('caller5_same() LINE 5:   throw e;');
    expect((await call('public.caller5_new')).context).toBe('caller5_new() LINE 5:   throw new Error(e.message);');
  });

  it("puts the error's own context first, and keeps code, detail and hint", async () => {
    expect(await call('public.f2_full')).toMatchObject({
      message: 'bad param', sqlstate: '22023', detail: 'the detail', hint: 'the hint', context: 'the context\nf2_full() LINE 3: throw e;',
    });
  });

  it('an SQL error from plv8.execute carries its statement, then the calling line', async () => {
    expect(await call('public.f6')).toMatchObject({ message: 'division by zero', sqlstate: '22012', context: 'SQL statement "SELECT 1/0"\nf6() LINE 2: plv8.execute(\'SELECT 1/0\');' });
  });

  it('a thrown string is its message', async () => {
    expect((await call('public.f7')).message).toBe('oops');
  });
});
