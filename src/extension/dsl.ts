/** SQL entry points of the DSL builders: arguments as plv8 passes them, checks in src/core/builders. */
import * as b from '../core/builders';
import { nonFutureHelperFor } from './session';

const opts = (...steps: (string | null)[]): b.StepOptions => ({ nonFutureHelper: nonFutureHelperFor(steps) });

export const DSL_ENTRIES = {
  sql: (query: string) => b.sql(query),
  seq: (a: string, c: string) => b.seq(a, c, opts(a, c)),
  as: (fut: string, name: string) => b.as(fut, name, opts(fut)),
  sleep: (seconds: number) => b.sleep(seconds),
  wait_for_schedule: (expr: string) => b.waitForSchedule(expr),
  loop: (body: string | null, condition: string | null) => b.loop(body, condition, opts(body, condition)),
  break: (value: string | null) => b.breakNode(value),
  if: (c: string, t: string, e: string) => b.ifNode(c, t, e, opts(c, t, e)),
  if_rows: (name: string, t: string, e: string) => b.ifRows(name, t, e, opts(t, e)),
  join: (x: string, y: string) => b.join(x, y, opts(x, y)),
  join3: (x: string, y: string, z: string) => b.join3(x, y, z, opts(x, y, z)),
  race: (x: string, y: string) => b.race(x, y, opts(x, y)),
  http: (url: string | null, method: string | null, body: string | null, headers: object | null, timeout: number | null) =>
    b.http(url, method, body, headers, timeout),
  http_multipart: (url: string | null, method: string | null, parts: unknown, headers: object | null, timeout: number | null) =>
    b.httpMultipart(url, method, parts, headers, timeout),
  wait_for_signal: (name: string | null, timeout: number | null) => b.waitForSignal(name, timeout),
  retry: (node: string, maxAttempts: number, backoffSeconds: number) => b.retry(node, maxAttempts, backoffSeconds, opts(node)),
  timeout: (node: string, seconds: number) => b.timeout(node, seconds, opts(node)),
  with_undo: (forward: string, undo: string) => b.withUndo(forward, undo, opts(forward, undo)),
};
