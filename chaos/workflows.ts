/**
 * The chaos workload: mixed workflows built with the DSL, each with the result it must end with and
 * the ledger rows its SQL steps must leave exactly once.
 *
 * Every effectful step appends to `ledger` (no unique constraint, on purpose: a duplicate is counted,
 * not turned into a failure) and returns the new row's id as `lid`, so the checkpoint that recorded
 * the step (df._runs.result) names the very row it produced.
 */
import { lit } from './lib';

export const LEDGER_DDL = `
CREATE TABLE IF NOT EXISTS ledger (
  id   bigserial PRIMARY KEY,
  inst text NOT NULL,
  step text NOT NULL,
  v    int,
  at   timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX IF NOT EXISTS ledger_inst ON ledger (inst, step);`;

export type Kind = 'seq' | 'join' | 'race' | 'loop' | 'rootloop' | 'sleep' | 'signal' | 'signal2' | 'schedule' | 'xdb' | 'saga';

/**
 * The other database of `xdb` workflows (started with `database => XDB`): no pg_durable there, its
 * own `ledger` whose ids start at XDB_LEDGER_START so a checkpoint's lid names one row of either.
 */
export const XDB = 'chaos_x';
export const XDB_LEDGER_START = 1_000_000_000;

export interface SignalPlan {
  name: string;
  payload: { n: number; nonce: string };
}

export interface Spec {
  key: number;
  kind: Kind;
  label: string;
  expr: string;
  /** df.result(id) parsed as JSON. */
  expected: unknown;
  /** Ledger steps that must exist exactly once. */
  steps: string[];
  /** Ledger steps that must never exist (a race loser's). */
  forbidden: string[];
  /** Signals the driver sends, in order. */
  signals: SignalPlan[];
  /** For 'sleep': the SLEEP seconds between ledger steps 'before' and 'after'. */
  sleepSeconds?: number;
  /** For 'xdb': the database its steps run in (df.start's third argument). */
  database?: string;
  /** The status it must end in (default 'completed'); for 'failed', `expected` is matched against the keys it names. */
  expectedStatus?: 'completed' | 'failed';
  /** Ledger steps that must appear in this order (a saga's undos, most recent first). */
  order?: string[];
}

/** One effectful step: appends (instance, step, v) and returns v and the row id. */
const L = (step: string, v: number) => lit(`INSERT INTO ledger (inst, step, v) VALUES ('{sys_instance_id}', '${step}', ${v}) RETURNING v, id AS lid`);
const as = (x: string, name: string) => `df.as(${x}, '${name}')`;
const seq = (...xs: string[]) => xs.reduce((a, b) => `df.seq(${a}, ${b})`);

export const KINDS: Kind[] = ['seq', 'join', 'race', 'loop', 'rootloop', 'sleep', 'signal', 'signal2', 'schedule', 'xdb', 'saga'];

/** Relative frequencies of the kinds in a run (schedule waits up to a minute: keep it rare). */
const WEIGHTS: Record<Kind, number> = { seq: 18, join: 14, race: 10, loop: 12, rootloop: 8, sleep: 12, signal: 14, signal2: 8, schedule: 4, xdb: 12, saga: 12 };

export function pickKind(r: () => number, allowSchedule: boolean): Kind {
  const kinds = KINDS.filter((k) => allowSchedule || k !== 'schedule');
  const total = kinds.reduce((s, k) => s + WEIGHTS[k], 0);
  let x = r() * total;
  for (const k of kinds) {
    x -= WEIGHTS[k];
    if (x < 0) return k;
  }
  return kinds[kinds.length - 1];
}

export function makeSpec(key: number, kind: Kind, r: () => number, runId: string): Spec {
  const label = `chaos-${runId}-${key}`;
  const int = (lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
  const nonce = () => `${runId}-${key}-${Math.floor(r() * 1e9).toString(36)}`;
  const rows = (row: Record<string, unknown>) => ({ rows: [row], row_count: 1 });
  switch (kind) {
    case 'seq': {
      const n = int(3, 5);
      const vs = Array.from({ length: n }, () => int(1, 99));
      const parts: string[] = [];
      vs.forEach((v, i) => {
        parts.push(as(L(`s${i + 1}`, v), `s${i + 1}`));
        if (i % 2 === 0) parts.push(lit('SELECT pg_sleep(0.2)'));
      });
      parts.push(lit(`SELECT ${vs.map((_, i) => `$s${i + 1}.v`).join(' + ')} AS total`));
      return { key, kind, label, expr: seq(...parts), expected: rows({ total: vs.reduce((a, b) => a + b, 0) }), steps: vs.map((_, i) => `s${i + 1}`), forbidden: [], signals: [] };
    }
    case 'join': {
      const [a, b, c] = [int(1, 99), int(1, 99), int(1, 99)];
      const expr = seq(
        `df.join3(${seq(as(L('a', a), 'a'), lit('SELECT pg_sleep(0.3)'))}, ${seq(as(L('b', b), 'b'), 'df.sleep(1)')}, ${as(L('c', c), 'c')})`,
        lit('SELECT $a.v + $b.v + $c.v AS total'),
      );
      return { key, kind, label, expr, expected: rows({ total: a + b + c }), steps: ['a', 'b', 'c'], forbidden: [], signals: [] };
    }
    case 'race': {
      const v = int(1, 99);
      // The left branch's timer is durable (its deadline survives crashes); the right branch's
      // pg_sleep restarts from zero after every crash, so the left branch always wins.
      const expr = seq(
        `df.race(${seq('df.sleep(1)', as(L('r1', v), 'w'))}, ${seq(lit('SELECT pg_sleep(30)'), L('r2', 0))})`,
        lit('SELECT $w.v AS winner'),
      );
      return { key, kind, label, expr, expected: rows({ winner: v }), steps: ['r1'], forbidden: ['r2'], signals: [] };
    }
    case 'loop': {
      const n = int(2, 4);
      const body = seq(
        as(lit(`INSERT INTO ledger (inst, step, v) VALUES ('{sys_instance_id}', 'loop:' || ($i + 1), $i + 1) RETURNING v AS i, id AS lid`), 'i'),
        `df.if(${lit(`SELECT $i >= ${n}`)}, df.break('done'), ${lit('SELECT 1')})`,
      );
      const expr = seq(as(lit('SELECT 0 AS i'), 'i'), `df.loop(${body})`, lit('SELECT $i AS iterations'));
      return { key, kind, label, expr, expected: rows({ iterations: n }), steps: Array.from({ length: n }, (_, i) => `loop:${i + 1}`), forbidden: [], signals: [] };
    }
    case 'rootloop': {
      // Continue-as-new: named results do not survive an iteration, so the counter is the ledger.
      const n = int(2, 4);
      const tick = lit(
        `INSERT INTO ledger (inst, step, v) SELECT '{sys_instance_id}', 'tick:' || (count(*) + 1), count(*) + 1 FROM ledger WHERE inst = '{sys_instance_id}' AND step LIKE 'tick:%' RETURNING v AS t, id AS lid`,
      );
      const expr = `df.loop(${seq(as(tick, 't'), `df.if(${lit(`SELECT $t >= ${n}`)}, df.break(${lit(`{"ticks": ${n}}`)}), ${lit('SELECT 1')})`)})`;
      return { key, kind, label, expr, expected: { ticks: n }, steps: Array.from({ length: n }, (_, i) => `tick:${i + 1}`), forbidden: [], signals: [] };
    }
    case 'sleep': {
      const s = [1, 2, 3, 5][int(0, 3)];
      const expr = seq(L('before', 0), `df.sleep(${s})`, L('after', s), lit(`SELECT 'slept' AS s`));
      return { key, kind, label, expr, expected: rows({ s: 'slept' }), steps: ['before', 'after'], forbidden: [], signals: [], sleepSeconds: s };
    }
    case 'signal': {
      const n = int(1, 1_000_000);
      const post = lit(`INSERT INTO ledger (inst, step, v) VALUES ('{sys_instance_id}', 'post', ($sig::jsonb -> 'data' ->> 'n')::int) RETURNING v, id AS lid`);
      const expr = seq(L('pre', 0), as(`df.wait_for_signal('go')`, 'sig'), as(post, 'p'), lit('SELECT $p.v AS got'));
      return { key, kind, label, expr, expected: rows({ got: n }), steps: ['pre', 'post'], forbidden: [], signals: [{ name: 'go', payload: { n, nonce: nonce() } }] };
    }
    case 'signal2': {
      // Two waits on one name: the signals are consumed in the order they were sent.
      const n1 = int(1, 999);
      const n2 = int(1, 999);
      const post = lit(
        `INSERT INTO ledger (inst, step, v) VALUES ('{sys_instance_id}', 'post', ($s1::jsonb -> 'data' ->> 'n')::int * 1000 + ($s2::jsonb -> 'data' ->> 'n')::int) RETURNING v, id AS lid`,
      );
      const expr = seq(as(`df.wait_for_signal('step')`, 's1'), L('mid', 0), as(`df.wait_for_signal('step')`, 's2'), as(post, 'p'), lit('SELECT $p.v AS got'));
      return {
        key, kind, label, expr, expected: rows({ got: n1 * 1000 + n2 }), steps: ['mid', 'post'], forbidden: [],
        signals: [{ name: 'step', payload: { n: n1, nonce: nonce() } }, { name: 'step', payload: { n: n2, nonce: nonce() } }],
      };
    }
    case 'saga': {
      // Forwards with undos, then a failing step: the undos run most recent first, each exactly
      // once, across worker kills and PostgreSQL restarts during the compensation (the undos
      // sleep, so crashes land in them).
      const n = int(2, 4);
      const parts: string[] = [];
      for (let i = 1; i <= n; i++) {
        const undo = lit(`INSERT INTO ledger (inst, step, v) SELECT '{sys_instance_id}', 'u${i}', ${i} FROM pg_sleep(0.3) RETURNING v, id AS lid`);
        parts.push(`df.with_undo(${as(L(`f${i}`, i), `f${i}`)}, ${undo})`);
        if (i % 2 === 1) parts.push(lit('SELECT pg_sleep(0.2)'));
      }
      parts.push(lit('SELECT 1/0 AS boom'));
      const undos = Array.from({ length: n }, (_, i) => `u${n - i}`);
      return {
        key, kind, label, expr: seq(...parts), expected: { compensated: n, compensation_failed: 0 }, expectedStatus: 'failed',
        steps: [...Array.from({ length: n }, (_, i) => `f${i + 1}`), ...undos], forbidden: [], signals: [], order: undos,
      };
    }
    case 'xdb': {
      // Every step in the other database: exactly-once through two-phase commit (the chaos cluster
      // has max_prepared_transactions > 0); the workers pause after PREPARE and after the
      // checkpoint, so kills land between prepare and commit.
      const n = int(2, 4);
      const vs = Array.from({ length: n }, () => int(1, 99));
      const parts: string[] = [];
      vs.forEach((v, i) => {
        parts.push(as(L(`x${i + 1}`, v), `x${i + 1}`));
        if (i % 2 === 0) parts.push(lit('SELECT pg_sleep(0.2)'));
      });
      parts.push(lit(`SELECT ${vs.map((_, i) => `$x${i + 1}.v`).join(' + ')} AS total, current_database() AS db`));
      return {
        key, kind, label, expr: seq(...parts), expected: rows({ total: vs.reduce((a, b) => a + b, 0), db: XDB }),
        steps: vs.map((_, i) => `x${i + 1}`), forbidden: [], signals: [], database: XDB,
      };
    }
    case 'schedule': {
      const expr = seq(L('pre', 0), `df.wait_for_schedule('* * * * *')`, L('post', 0), lit(`SELECT 'ticked' AS s`));
      return { key, kind, label, expr, expected: rows({ s: 'ticked' }), steps: ['pre', 'post'], forbidden: [], signals: [] };
    }
  }
}
