/**
 * The durable interpreter: runs one instance's graph (API §9) and makes every transition durable.
 *
 * Recovery is by replay. A worker that (re)claims an instance loads the node runs of the current
 * execution and runs the graph from the root again: a leaf whose outcome is recorded returns it
 * without running (completed steps never run twice), composites re-run their in-memory logic so
 * named results, JOIN merges and loop counters come back exactly, and timers resume from their
 * recorded deadlines. The only non-deterministic choice, a RACE winner, is recorded before anything
 * depends on it.
 */
import { DfError } from '../core/errors';
import { utf8Bytes } from '../core/limits';
import { nextTick } from '../core/cron';
import type { TreeNode } from '../core/node';
import { substitute, substituteWholeValue, type SubstitutionContext } from '../core/substitute';
import { conditionIsTrue, ifRowsTest } from '../core/truthy';
import { Aborted, type Clock } from './clock';
import { executeHttp, executeHttpMultipart, type EgressPolicy, type HttpAuditEntry } from './http';
import type { Logger } from './log';
import { metrics } from './metrics';
import { compactJson, config, fail, failingPath, isJson, ok, type Outcome } from './outcome';
import { hasUndo, snapshotFor, undoStamp, UndoStack, type Registration } from './saga';
import type { SignalHub } from './signals';
import { type Batch, RunLog } from './runlog';
import { LeaseLost, ParkedCheckpointFailed, type StepRunner } from './steps';
import { COMMIT_SQL, type InstanceTransition, type NodeEvent, type RunRecord, type Store } from './store';

/** One undo run by compensation: which forward it undid, and how it ended. */
export interface CompensationEntry {
  undo_of: string;
  undo: string;
  status: 'completed' | 'failed';
  error?: string;
}

interface Scope {
  /** `<scope>::<generation>`, written to status_details.execution_id. */
  stamp: string;
  /** Named results visible here (raw result texts). */
  results: Record<string, string>;
  signal: AbortSignal;
}

export interface InstanceState {
  id: string;
  label: string | null;
  role: string;
  roleOid: string;
  database: string;
  vars: Record<string, string>;
  /** Mutable: a re-claim by the same worker hands out a new token. */
  token: string;
  executionId: number;
  /**
   * Whether df.instances says 'running' (or later) already. While false, the first durable write
   * carries the 'running' transition: a claim does not write the instance.
   */
  started: boolean;
  /**
   * Called once, when the run reaches its first leaf: from then on a SQL step holds or waits for
   * a step slot and a wait holds none. Before, the worker counts the instance as about to take a
   * slot (Worker.room).
   */
  firstLeaf?: () => void;
}

export interface Deps {
  store: Store;
  steps: StepRunner;
  clock: Clock;
  log: Logger;
  hub: SignalHub;
  egress: EgressPolicy;
  /** Fires on graceful shutdown: waits stop at once, in-flight SQL steps may finish. */
  drain: AbortSignal;
  /** --max-result-bytes: also bounds what composites assemble (a JOIN's array). */
  maxResultBytes: number;
}

/** The original's guard (API §9.6). */
export const MAX_LOOP_ITERATIONS = 100000;
/** Minimum duration of a loop iteration (API §9.6): a loop of df.sleep(0) runs about once a second. */
const LOOP_FLOOR_MS = 1000;
/** A SIGNAL wait re-checks the inbox at least this often even if a NOTIFY is missed. */
const SIGNAL_RECHECK_MS = 5000;

const HTTP_SIGNATURE = 'df.http(text,text,text,jsonb,integer)';
const MULTIPART_SIGNATURE = 'df.http_multipart(text,text,jsonb,jsonb,integer)';

/**
 * A SQL step that is still running after this long gets its 'running' stamp written (for
 * monitoring); quicker steps go straight to completed in their own transaction. 200 ms: well above
 * a typical step (1-10 ms in docs/PERFORMANCE.md), well below what a person watching would notice.
 */
const RUNNING_STAMP_DELAY_MS = 200;

export class Interpreter {
  /** History, pending events and durable writes of this run (src/worker/runlog.ts). */
  private readonly runs: RunLog;
  /** The root's final event, written together with the instance transition. */
  private rootEvent: NodeEvent | null = null;
  /** A step's transaction already completed the instance (the last step of the root sequence). */
  private instanceDone = false;
  private readonly parents = new Map<TreeNode, TreeNode>();
  private readonly byId = new Map<string, TreeNode>();
  /** Registered undos of this execution (src/worker/saga.ts). */
  private undos: UndoStack;
  /** Undos running: UNDO nodes inside an undo register nothing (no compensation of compensations). */
  private compensating = false;

  constructor(
    private readonly deps: Deps,
    private readonly inst: InstanceState,
    private readonly root: TreeNode,
    history: RunRecord[],
    private readonly signal: AbortSignal,
    /** df.cancel(..., compensate => true): nothing new runs, the undos do, the instance ends cancelled. */
    private readonly cancelRequest: string | null = null,
  ) {
    if (history.length > 0) metrics.takeovers.inc(); // metrics
    const walk = (n: TreeNode) => {
      for (const c of [n.left, n.right, n.condition, ...(n.extras ?? [])]) {
        if (c) {
          this.parents.set(c, n);
          walk(c);
        }
      }
    };
    walk(root);
    this.byId.set(root.id, root);
    for (const n of this.parents.keys()) this.byId.set(n.id, n);
    this.runs = new RunLog(deps.store, deps.steps, inst, history, root.id, this.runOnce());
    this.undos = new UndoStack(history, this.byId);
  }


  /**
   * The nodes that run at most once per execution, with one stamp, and whose events carry nothing
   * but status and result: SQL steps and THENs under nothing but THENs (a sequence's spine). Their
   * node rows can keep their runs (RunLog.outgoing): nothing else ever writes those rows. A node in
   * a loop, a retry, a branch of a race, an undo or any other scope may run again or carry detail.
   */
  private runOnce(): Set<string> {
    const once = new Set<string>();
    for (const n of this.byId.values()) {
      if (n.node_type !== 'SQL' && n.node_type !== 'THEN') continue;
      let p = this.parents.get(n);
      while (p && p.node_type === 'THEN') p = this.parents.get(p);
      if (!p) once.add(n.id);
    }
    return once;
  }

  /** SQL steps of this run in flight (see run: their stamps also mark the instance running). */
  private sqlInFlight = 0;

  /** Runs to the end (or until aborted) and records the instance's final state. */
  async run(): Promise<Outcome> {
    // An instance whose run writes nothing durable for a while (an HTTP call first, say) still
    // turns 'running' after RUNNING_STAMP_DELAY_MS. While a SQL step is in flight its own stamp
    // does it, in the same write as the node's (one management transaction, not two).
    const startTimer = this.inst.started ? null : setTimeout(() => {
      if (!this.inst.started && this.sqlInFlight === 0) this.stampRunning([]);
    }, RUNNING_STAMP_DELAY_MS);
    let ended = false;
    try {
      const outcome = await this.runToEnd();
      ended = true;
      return outcome;
    } finally {
      if (startTimer) clearTimeout(startTimer);
      // The last step's checkpoint may be parked (src/worker/steps.ts): the run is over when it is
      // durable. After an error the error stands; what is parked still commits if it can.
      const parked = this.runs.durable();
      if (ended) await parked;
      else await parked.catch(() => undefined);
    }
  }

  private async runToEnd(): Promise<Outcome> {
    const final = this.root.node_type === 'LOOP' ? await this.rootLoop(this.root) : await this.exec(this.root, this.rootScope());
    let outcome = final;
    if (final.kind === 'break') {
      outcome = fail('df.break() was called outside of a loop. df.break() may only be used inside df.loop().');
      this.rootEvent = this.event(this.root, this.rootScope().stamp, outcome);
    }
    if (outcome.kind === 'fail' && this.undos.size > 0) {
      // Nothing above absorbed the failure: run every registered undo before the instance ends.
      const report = await this.compensateFailure(outcome.error);
      outcome = fail(report);
      // The report is JSON: df.result and df.instance_info return it as such.
      this.rootEvent = { node: this.root.id, stamp: this.rootScope().stamp, status: 'failed', result: report, json: true, detail: null };
    }
    if (this.instanceDone) return outcome;
    const events = this.rootEvent ? [this.rootEvent] : [];
    if (outcome.kind === 'ok') await this.runs.write(events, 'completed', outcome.result);
    else if (outcome.kind === 'fail') await this.runs.write(events, this.cancelRequest === null ? 'failed' : 'cancelled', outcome.error);
    return outcome;
  }

  /**
   * Ends the instance as failed with `message` after an error that would recur at every retry (the
   * role lost its pg_durable privileges or no longer exists, a malformed node): what finished keeps
   * its outcome (completions still pending are written first), and every run still `running` — the
   * path from the root down to where the error struck, and parallel branches in flight — is
   * stamped `failed` with the message, together with the instance. Worker connection only.
   */
  async abandon(message: string): Promise<void> {
    await this.runs.durable().catch(() => undefined); // what did not commit is not finished
    const finished = this.runs.withPending([]).events.filter((e) => e.status !== 'running');
    if (finished.length > 0) {
      await this.runs.commit(() => this.deps.store.commit(this.inst.id, this.inst.token, finished));
      this.runs.clearPending();
    }
    const events = failingPath(this.runs.records(), this.root.id, this.rootScope().stamp, message);
    await this.runs.commit(() => this.deps.store.commit(this.inst.id, this.inst.token, events, 'failed', message));
    this.runs.record(events);
  }

  private rootScope(): Scope {
    return { stamp: `${this.inst.id}::${this.inst.executionId}`, results: this.rootResults, signal: this.signal };
  }

  private rootResults: Record<string, string> = {};

  // ---- durable writes -------------------------------------------------------------------------

  /**
   * A 'running' stamp for monitoring, on a management connection: `events` and, until the
   * instance reads running, its transition. Refused once the lease is gone (the instance may just
   * have finished): nothing to do then.
   */
  private stampRunning(events: NodeEvent[]): void {
    this.runs.sending(events);
    this.deps.store.commit(this.inst.id, this.inst.token, events, this.inst.started ? null : 'running').then(() => { this.inst.started = true; }, () => undefined);
  }

  private defer(events: NodeEvent[]): void {
    this.runs.defer(events);
  }

  private record(events: NodeEvent[]): void {
    this.runs.record(events);
  }

  private recorded(stamp: string, node: TreeNode): RunRecord | undefined {
    return this.runs.get(stamp, node.id);
  }

  private event(node: TreeNode, stamp: string, o: Outcome, detail?: Record<string, unknown>): NodeEvent {
    if (o.kind === 'fail') return { node: node.id, stamp, status: 'failed', result: o.error, json: false, detail: detail ?? null };
    const text = o.kind === 'ok' ? o.result : o.value;
    return { node: node.id, stamp, status: 'completed', result: text, json: isJson(text), detail: detail ?? null };
  }

  /**
   * Stamps a node running. `durable` when the start carries a deadline a restart must honour
   * (SLEEP, WAIT_SCHEDULE, SIGNAL, TIMEOUT, a retry attempt); otherwise it waits in `pending`.
   */
  private async started(node: TreeNode, scope: Scope, detail?: Record<string, unknown>, durable = false): Promise<RunRecord> {
    const rec = this.recorded(scope.stamp, node);
    if (rec) return rec;
    const ev: NodeEvent = { node: node.id, stamp: scope.stamp, status: 'running', detail: detail ?? null };
    if (durable) await this.runs.write([ev]);
    else this.defer([ev]);
    return this.recorded(scope.stamp, node)!;
  }

  /** Records a node's outcome; `durable` for outcomes of external effects (HTTP) that must not be redone. */
  private async finished(node: TreeNode, scope: Scope, o: Outcome, detail?: Record<string, unknown>, durable = false): Promise<Outcome> {
    const rec = this.recorded(scope.stamp, node);
    if (!rec || rec.status === 'running') {
      const ev = this.event(node, scope.stamp, o, detail);
      if (node === this.root && scope.stamp === this.rootScope().stamp) this.rootEvent = ev;
      else if (durable) await this.runs.write([ev]);
      else this.defer([ev]);
    }
    return this.remember(node, scope, o);
  }

  /**
   * Whether completing `node` completes the instance: it is the last step of the root sequence
   * (every ancestor is a THEN with it on the right), outside any loop or branch scope.
   */
  private completesInstance(node: TreeNode, scope: Scope): TreeNode[] | null {
    if (scope.stamp !== this.rootScope().stamp || this.root.node_type === 'LOOP') return null;
    const spine: TreeNode[] = [];
    for (let n = node; n !== this.root; ) {
      const p = this.parents.get(n);
      if (!p || p.node_type !== 'THEN' || p.right !== n) return null;
      spine.push(p);
      n = p;
    }
    return spine;
  }

  /** A named node's successful result becomes `$name` (SLEEP and WAIT_SCHEDULE names are ignored). */
  private remember(node: TreeNode, scope: Scope, o: Outcome): Outcome {
    if (o.kind === 'ok' && node.result_name && node.node_type !== 'SLEEP' && node.node_type !== 'WAIT_SCHEDULE') {
      scope.results[node.result_name] = o.result;
    }
    return o;
  }

  private fromRecord(node: TreeNode, rec: RunRecord): Outcome {
    if (rec.status === 'failed') return fail(rec.result ?? '');
    if (node.node_type === 'BREAK') return { kind: 'break', value: rec.result ?? 'null' };
    return ok(rec.result ?? 'null');
  }

  /** Waits (timers, signals) end on cancel, race loss or shutdown. */
  private interruptible(scope: Scope): AbortSignal {
    return AbortSignal.any([scope.signal, this.deps.drain]);
  }

  private substitution(scope: Scope): SubstitutionContext {
    return { instanceId: this.inst.id, label: this.inst.label, vars: this.inst.vars, results: scope.results };
  }

  // ---- dispatch -------------------------------------------------------------------------------

  async exec(node: TreeNode, scope: Scope): Promise<Outcome> {
    if (scope.signal.aborted || this.deps.drain.aborted) throw new Aborted();
    switch (node.node_type) {
      case 'THEN': return this.composite(node, scope, async () => {
        const left = await this.exec(node.left!, scope);
        return left.kind === 'ok' ? this.exec(node.right!, scope) : left;
      });
      case 'IF': return this.composite(node, scope, () => this.ifNode(node, scope));
      case 'JOIN': return this.composite(node, scope, () => this.join(node, scope));
      case 'RACE': return this.race(node, scope);
      case 'LOOP': return this.loop(node, scope, `${scope.stamp}::${node.id}`);
      case 'RETRY': return this.retry(node, scope);
      case 'TIMEOUT': return this.timeout(node, scope);
      case 'UNDO': return this.undoNode(node, scope);
      default: return this.leaf(node, scope);
    }
  }

  private async composite(node: TreeNode, scope: Scope, body: () => Promise<Outcome>): Promise<Outcome> {
    await this.started(node, scope);
    const o = await body();
    return this.finished(node, scope, o);
  }

  private async leaf(node: TreeNode, scope: Scope): Promise<Outcome> {
    if (this.inst.firstLeaf) {
      this.inst.firstLeaf();
      this.inst.firstLeaf = undefined;
    }
    const rec = this.recorded(scope.stamp, node);
    if (rec && rec.status !== 'running') return this.remember(node, scope, this.fromRecord(node, rec));
    // A compensating cancel: the frontier of the recorded run fails instead of running.
    if (this.cancelRequest !== null && !this.compensating) return this.finished(node, scope, fail(`Cancelled: ${this.cancelRequest}`));
    this.deps.log.debug({ instance: this.inst.id, node: node.id, type: node.node_type, stamp: scope.stamp }, 'step');
    return metrics.step(this.inst.id, node.node_type, () => this.runLeaf(node, scope)); // metrics
  }

  private runLeaf(node: TreeNode, scope: Scope): Promise<Outcome> {
    switch (node.node_type) {
      case 'SQL': return this.sql(node, scope);
      case 'BREAK': return this.breakNode(node, scope);
      case 'SLEEP': return this.sleep(node, scope);
      case 'WAIT_SCHEDULE': return this.schedule(node, scope);
      case 'SIGNAL': return this.waitSignal(node, scope);
      case 'HTTP': return this.http(node, scope, false);
      case 'HTTP_MULTIPART': return this.http(node, scope, true);
      default: return this.finished(node, scope, fail(`Unsupported node type '${String(node.node_type)}'`));
    }
  }

  // ---- leaves ---------------------------------------------------------------------------------

  private async sql(node: TreeNode, scope: Scope): Promise<Outcome> {
    let text: string;
    try {
      text = substitute(node.query ?? '', this.substitution(scope), 'sql');
    } catch (err) {
      return this.finished(node, scope, fail((err as Error).message));
    }
    const spine = this.completesInstance(node, scope);
    // Only a step still running after RUNNING_STAMP_DELAY_MS gets its own 'running' write; df._commit
    // never lets that late stamp overwrite the completion.
    const stampTimer = setTimeout(() => this.stampRunning([{ node: node.id, stamp: scope.stamp, status: 'running' }]), RUNNING_STAMP_DELAY_MS);
    this.sqlInFlight++;
    let carried: { batch: Batch; done: NodeEvent[] } | null = null;
    let out;
    try {
      out = await this.deps.steps.run({
        role: this.inst.role,
        database: this.inst.database,
        sql: text,
        signal: scope.signal,
        instance: this.inst.id,
        stamp: scope.stamp,
        node: node.id,
        token: () => this.inst.token,
        // Inside the step's transaction: its completion, whatever is pending, and — for the last
        // step of the root sequence — the completion of that sequence and of the instance.
        checkpoint: async (run, json, detail) => {
          // No 'running' stamp after this: it could land after a checkpoint that left the run to the node row.
          clearTimeout(stampTimer);
          const done: NodeEvent[] = [{ node: node.id, stamp: scope.stamp, status: 'completed', result: json, json: true, detail: detail ?? null }];
          for (const p of spine ?? []) done.push({ node: p.id, stamp: scope.stamp, status: 'completed', result: json, json: true });
          const batch = this.runs.withPending(done);
          const transition: InstanceTransition | null = spine ? 'completed' : this.runs.withStart(null);
          const output = spine ? json : null;
          await run(COMMIT_SQL, [this.inst.id, this.inst.token, JSON.stringify(this.runs.outgoing(batch.events, transition, output)), transition, output]);
          carried = { batch, done };
        },
        recorded: () => this.deps.store.completedResult(this.inst.id, scope.stamp, node.id),
        // The step that completes the instance has no next step to travel with.
        chain: spine === null,
      });
    } catch (err) {
      // The previous step's held-back checkpoint was refused: that step is where the path ends.
      if (err instanceof ParkedCheckpointFailed) {
        this.runs.revert();
      }
      // An error that ends the run (not a node failure): the step is where the failing path ends.
      else if (!(err instanceof Aborted) && !(err instanceof LeaseLost)) this.record([{ node: node.id, stamp: scope.stamp, status: 'running' }]);
      throw err;
    } finally {
      clearTimeout(stampTimer);
      this.sqlInFlight--;
    }
    if (out.kind === 'fail') return this.finished(node, scope, fail(out.error));
    if (out.checkpointed && carried !== null) {
      const c: { batch: Batch; done: NodeEvent[] } = carried;
      this.runs.stepCommitted(c.batch, c.done, out.parked === true);
      if (spine) this.instanceDone = true;
      return this.remember(node, scope, ok(out.json));
    }
    return this.finished(node, scope, ok(out.json), out.note ? { note: out.note } : undefined, true);
  }

  private breakNode(node: TreeNode, scope: Scope): Promise<Outcome> {
    let raw: unknown = null;
    try {
      raw = (JSON.parse(node.query ?? '{}') as { break_value?: unknown }).break_value ?? null;
    } catch {
      raw = null;
    }
    let value: string;
    if (raw === null) value = 'null';
    else {
      const text = String(raw);
      value = isJson(text) ? compactJson(text) : JSON.stringify(text);
    }
    const o: Outcome = { kind: 'break', value };
    return this.finished(node, scope, o);
  }

  private async sleep(node: TreeNode, scope: Scope): Promise<Outcome> {
    const seconds = Number(node.query ?? '0');
    const rec = await this.started(node, scope, { wake_at: this.deps.clock.now() + seconds * 1000 }, true);
    await this.deps.clock.sleepUntil(Number(rec.detail?.wake_at), this.interruptible(scope));
    return this.finished(node, scope, ok(`{"slept": true, "seconds": ${seconds}}`));
  }

  private async schedule(node: TreeNode, scope: Scope): Promise<Outcome> {
    let cron: string;
    try {
      const cfg = JSON.parse(node.query ?? '{}') as { cron_expr?: unknown };
      if (typeof cfg.cron_expr !== 'string') return this.finished(node, scope, fail('WAIT_SCHEDULE missing cron_expr'));
      cron = cfg.cron_expr;
    } catch {
      return this.finished(node, scope, fail('WAIT_SCHEDULE missing cron_expr'));
    }
    let wakeAt: number;
    const existing = this.recorded(scope.stamp, node);
    if (existing?.detail?.wake_at !== undefined) wakeAt = Number(existing.detail.wake_at);
    else {
      try {
        wakeAt = nextTick(cron, new Date(this.deps.clock.now())).getTime();
      } catch (err) {
        return this.finished(node, scope, fail((err as Error).message));
      }
    }
    await this.started(node, scope, { wake_at: wakeAt }, true);
    await this.deps.clock.sleepUntil(wakeAt, this.interruptible(scope));
    return this.finished(node, scope, ok('{"scheduled": true}'));
  }

  private async waitSignal(node: TreeNode, scope: Scope): Promise<Outcome> {
    let cfg: { signal_name: string; timeout_seconds: number | null };
    try {
      cfg = config(node);
    } catch (err) {
      return this.finished(node, scope, fail((err as Error).message));
    }
    const timeout = cfg.timeout_seconds;
    const rec = await this.started(node, scope, timeout ? { deadline: this.deps.clock.now() + timeout * 1000 } : undefined, true);
    const deadline = rec.detail?.deadline !== undefined ? Number(rec.detail.deadline) : null;
    for (;;) {
      // df._take_signal completes the node in the same transaction and returns its result; a
      // retried call (after an ambiguous commit) returns the recorded result instead of taking another.
      const result = await this.deps.store.takeSignal(this.inst.id, this.inst.token, cfg.signal_name, node.id, scope.stamp).catch((err) => {
        if ((err as { code?: string }).code === 'PD001') throw new LeaseLost((err as Error).message);
        throw err;
      });
      if (result !== null) {
        this.runs.put({ stamp: scope.stamp, nodeId: node.id, status: 'completed', result, detail: null });
        return this.remember(node, scope, ok(result));
      }
      const now = this.deps.clock.now();
      if (deadline !== null && now >= deadline) {
        return this.finished(node, scope, ok(`{"signal_name":${JSON.stringify(cfg.signal_name)},"timed_out":true,"data":null}`));
      }
      const untilDeadline = deadline === null ? SIGNAL_RECHECK_MS : Math.min(SIGNAL_RECHECK_MS, deadline - now);
      await this.deps.hub.wait(this.inst.id, untilDeadline, this.interruptible(scope));
    }
  }

  private async http(node: TreeNode, scope: Scope, multipart: boolean): Promise<Outcome> {
    await this.started(node, scope);
    // An external effect waits until the steps before it are durable.
    await this.runs.durable();
    const ctx = this.substitution(scope);
    try {
      const cfg = config<Record<string, unknown>>(node);
      const sub = (v: unknown) => (typeof v === 'string' ? substitute(v, ctx, 'raw') : v);
      cfg.url = sub(cfg.url);
      if (cfg.headers && typeof cfg.headers === 'object') {
        const h = cfg.headers as Record<string, unknown>;
        for (const k of Object.keys(h).sort()) h[k] = sub(h[k]);
      }
      const httpCtx = {
        policy: this.deps.egress,
        signal: scope.signal,
        role: this.inst.role,
        canExecute: () => this.deps.store.canExecute(this.inst.roleOid, multipart ? MULTIPART_SIGNATURE : HTTP_SIGNATURE),
        log: (entry: HttpAuditEntry) => this.deps.log.info({ instance: this.inst.id, node: node.id, ...entry }, 'http'),
      };
      let envelope: string;
      if (multipart) {
        if (Array.isArray(cfg.parts)) {
          for (const part of cfg.parts as Record<string, unknown>[]) {
            if (!part || typeof part !== 'object') continue;
            part.name = sub(part.name);
            part.filename = sub(part.filename);
            if (typeof part.data_b64 === 'string') part.data_b64 = substituteWholeValue(part.data_b64, ctx, String(part.name), node.id);
          }
        }
        envelope = await executeHttpMultipart(cfg as never, httpCtx);
      } else {
        cfg.body = sub(cfg.body);
        envelope = await executeHttp(cfg as never, httpCtx);
      }
      return this.finished(node, scope, ok(envelope), undefined, true); // an external effect: record it now
    } catch (err) {
      if (err instanceof Aborted || err instanceof LeaseLost) throw err;
      if (scope.signal.aborted) throw new Aborted();
      if (err instanceof DfError || err instanceof SyntaxError) return this.finished(node, scope, fail(err.message));
      throw err;
    }
  }

  // ---- composites -----------------------------------------------------------------------------

  private async ifNode(node: TreeNode, scope: Scope): Promise<Outcome> {
    let truth: boolean;
    if (node.condition) {
      const c = await this.exec(node.condition, scope);
      if (c.kind !== 'ok') return c;
      truth = conditionIsTrue(c.result);
    } else {
      try {
        const cfg = JSON.parse(node.query ?? '{}') as { result_name?: string };
        truth = ifRowsTest(String(cfg.result_name ?? ''), scope.results);
      } catch (err) {
        return fail((err as Error).message);
      }
    }
    return this.exec(truth ? node.left! : node.right!, scope);
  }

  /** A JOIN/RACE branch runs in its own scope with a snapshot of the named results. */
  private runBranch(branch: TreeNode, scope: Scope, signal: AbortSignal): Promise<{ o: Outcome; results: Record<string, string> }> {
    const results = { ...scope.results };
    const childScope = `${scope.stamp}::${branch.id}`;
    const run =
      branch.node_type === 'LOOP'
        ? this.loop(branch, { stamp: scope.stamp, results, signal }, childScope) // the branch *is* the loop's scope
        : this.exec(branch, { stamp: `${childScope}::1`, results, signal });
    return run.then((o) => ({ o, results }));
  }

  private async join(node: TreeNode, scope: Scope): Promise<Outcome> {
    const branches = [node.left!, node.right!, ...(node.extras ?? [])];
    // A failing branch does not cancel its siblings (API §9.8): wait for all of them.
    const outs = await Promise.all(branches.map((b) => this.runBranch(b, scope, scope.signal)));
    for (let i = 0; i < outs.length; i++) {
      const { o } = outs[i];
      if (o.kind === 'fail') return fail(`JOIN branch ${i + 1} failed: ${o.error}`);
      if (o.kind === 'break') return o;
    }
    const parts: string[] = [];
    for (let i = 0; i < outs.length; i++) {
      Object.assign(scope.results, outs[i].results);
      const text = (outs[i].o as { result: string }).result;
      try {
        parts.push(compactJson(text));
      } catch (err) {
        return fail(`JOIN branch ${i + 1} result parse error: ${(err as Error).message}`);
      }
    }
    const joined = `[${parts.join(',')}]`;
    // A UTF-16 unit is at most 3 UTF-8 bytes: only count bytes when the quick bound is exceeded.
    if (joined.length * 3 > this.deps.maxResultBytes) {
      const bytes = utf8Bytes(joined);
      if (bytes > this.deps.maxResultBytes) {
        return fail(`JOIN result too large: ${bytes} bytes, the limit is ${this.deps.maxResultBytes} bytes (--max-result-bytes); return less from the branches`);
      }
    }
    return ok(joined);
  }

  private async race(node: TreeNode, scope: Scope): Promise<Outcome> {
    const rec = await this.started(node, scope);
    const decided = typeof rec.detail?.race_winner === 'number' ? (rec.detail.race_winner as number) : null;
    const branches = [node.left!, node.right!];
    const controllers = branches.map(() => new AbortController());
    const onParentAbort = () => controllers.forEach((c) => c.abort());
    scope.signal.addEventListener('abort', onParentAbort, { once: true });
    const runs = branches.map((b, i) =>
      decided === null || decided === i ? this.runBranch(b, scope, controllers[i].signal).then((r) => ({ i, ...r })) : null,
    );
    let first: { i: number; o: Outcome; results: Record<string, string> };
    try {
      first = await Promise.race(runs.filter((r): r is NonNullable<typeof r> => r !== null));
    } finally {
      scope.signal.removeEventListener('abort', onParentAbort);
    }
    const loser = 1 - first.i;
    controllers[loser].abort();
    // The loser unwinds with Aborted (its SQL is cancelled). A loser that can register undos is
    // awaited, so that what its forwards completed, even at the last moment, is undone now.
    if (hasUndo(branches[loser])) {
      await runs[loser]?.catch(() => undefined);
      const lost = this.undos.take(`${scope.stamp}::${branches[loser].id}`);
      if (lost.length > 0) await this.compensate(lost, `RACE ${node.id} decided: ${first.i === 0 ? 'left' : 'right'} branch won`);
    } else {
      runs[loser]?.catch(() => undefined);
    }
    const events: NodeEvent[] = [];
    if (decided === null && branches[loser].node_type === 'LOOP') {
      events.push({ node: branches[loser].id, stamp: `${scope.stamp}::${branches[loser].id}::1`, status: 'failed', result: 'Loop branch cancelled after losing RACE', json: false });
    }
    let o = first.o;
    if (o.kind === 'fail') o = fail(`RACE ${first.i === 0 ? 'left' : 'right'} branch failed: ${o.error}`);
    else if (o.kind === 'ok') Object.assign(scope.results, first.results);
    if (events.length > 0) this.defer(events);
    return this.finished(node, scope, o, { race_winner: first.i });
  }

  /**
   * RETRY: attempt k runs the child in scope `<scope>::<retry id>::<k>`, so a failed attempt's nodes
   * run afresh in the next one (and `inferred_status` shows the superseded attempts). The backoff
   * deadline is recorded with the failed attempt before waiting, so a restarted worker resumes the
   * same wait. The RETRY node's status_details carry the attempt number.
   */
  private async retry(node: TreeNode, scope: Scope): Promise<Outcome> {
    let cfg: { max_attempts: number; backoff_seconds: number };
    try {
      cfg = config(node);
    } catch (err) {
      return this.finished(node, scope, fail((err as Error).message));
    }
    const retryScope = `${scope.stamp}::${node.id}`;
    let last: Outcome = fail('no attempt ran');
    let attempt: Scope = scope;
    for (let k = 1; k <= cfg.max_attempts; k++) {
      attempt = { stamp: `${retryScope}::${k}`, results: scope.results, signal: scope.signal };
      await this.started(node, attempt, { attempt: k });
      const o = await this.exec(node.left!, attempt);
      if (o.kind !== 'fail') return this.finished(node, attempt, o, { attempt: k });
      last = o;
      // The last attempt's undos go with the failure, to whoever absorbs it; a compensating cancel tries nothing more.
      if (k === cfg.max_attempts || (this.cancelRequest !== null && !this.compensating)) break;
      // The next attempt redoes the work: undo what this one did first (most recent first).
      await this.compensate(this.undos.take(attempt.stamp), `attempt ${k} of RETRY ${node.id} failed: ${o.error}`);
      const rec = this.recorded(attempt.stamp, node);
      let wakeAt = rec?.status === 'failed' && rec.detail?.wake_at !== undefined ? Number(rec.detail.wake_at) : null;
      if (wakeAt === null) {
        const base = cfg.backoff_seconds * 1000 * 2 ** (k - 1);
        wakeAt = this.deps.clock.now() + Math.round(base * (0.8 + Math.random() * 0.4)); // ±20% jitter
        await this.runs.write([{ node: node.id, stamp: attempt.stamp, status: 'failed', result: o.error, json: false, detail: { attempt: k, wake_at: wakeAt } }]);
      }
      this.deps.log.info({ instance: this.inst.id, node: node.id, attempt: k, error: o.error }, 'attempt failed; retrying');
      metrics.retries.inc({ type: node.left!.node_type, reason: 'retry_node' }); // metrics
      await this.deps.clock.sleepUntil(wakeAt, this.interruptible(scope));
    }
    const error = last.kind === 'fail' ? last.error : '';
    return this.finished(node, attempt, fail(`Retry exhausted after ${cfg.max_attempts} attempts: ${error}`), { attempt: cfg.max_attempts });
  }

  /**
   * UNDO (a saga step): the forward runs in this scope; once it completes, its undo is registered
   * (durably, with the named results it references) and the UNDO node completes with the forward's
   * result. Inside a running undo nothing is registered.
   */
  private async undoNode(node: TreeNode, scope: Scope): Promise<Outcome> {
    await this.started(node, scope);
    const o = await this.exec(node.left!, scope);
    if (o.kind !== 'ok' || this.compensating) return this.finished(node, scope, o);
    const rec = this.recorded(scope.stamp, node);
    const known = rec?.status === 'completed' && typeof rec.detail?.undo_seq === 'number';
    const seq = known ? (rec.detail!.undo_seq as number) : this.undos.next();
    const results = known && rec.detail?.undo_results && typeof rec.detail.undo_results === 'object'
      ? (rec.detail.undo_results as Record<string, string>)
      : snapshotFor(node.right!, scope.results);
    this.undos.add({ node, stamp: scope.stamp, seq, results });
    return this.finished(node, scope, o, { undo_seq: seq, undo_results: results });
  }

  /**
   * Runs registered undos, most recent first, each in its own scope with the named results of its
   * registration. An undo that fails does not stop the others: every one runs, and the report says
   * which failed. Returns the report's entries.
   */
  private async compensate(regs: Registration[], why: string): Promise<CompensationEntry[]> {
    const report: CompensationEntry[] = [];
    if (regs.length === 0) return report;
    this.deps.log.info({ instance: this.inst.id, undos: regs.length, why }, 'compensating');
    const was = this.compensating;
    this.compensating = true;
    try {
      for (const r of regs) {
        const scope: Scope = { stamp: undoStamp(r), results: { ...r.results }, signal: this.signal };
        const o = await this.exec(r.node.right!, scope);
        const entry: CompensationEntry = { undo_of: r.node.left!.id, undo: r.node.right!.id, status: o.kind === 'fail' ? 'failed' : 'completed' };
        if (o.kind === 'fail') entry.error = o.error;
        report.push(entry);
      }
    } finally {
      this.compensating = was;
    }
    return report;
  }

  /** The instance failed: undo everything registered; the report (JSON) says what failed and what was undone. */
  private async compensateFailure(error: string): Promise<string> {
    const report = await this.compensate(this.undos.take(null), `instance failed: ${error}`);
    const failed = report.filter((e) => e.status === 'failed').length;
    return JSON.stringify({ error, compensated: report.length - failed, compensation_failed: failed, compensation: report });
  }

  /**
   * TIMEOUT: the deadline is recorded when the node starts; the child races it and, if the time
   * runs out first, is aborted (its in-flight SQL is cancelled) and the node fails.
   */
  private async timeout(node: TreeNode, scope: Scope): Promise<Outcome> {
    let cfg: { seconds: number };
    try {
      cfg = config(node);
    } catch (err) {
      return this.finished(node, scope, fail((err as Error).message));
    }
    const rec = await this.started(node, scope, { deadline: this.deps.clock.now() + cfg.seconds * 1000 }, true);
    if (rec.status !== 'running') return this.remember(node, scope, this.fromRecord(node, rec));
    const deadline = Number(rec.detail?.deadline);
    const childCtrl = new AbortController();
    const timerCtrl = new AbortController();
    const onParentAbort = () => childCtrl.abort(scope.signal.reason);
    scope.signal.addEventListener('abort', onParentAbort, { once: true });
    const child = this.exec(node.left!, { stamp: scope.stamp, results: scope.results, signal: childCtrl.signal });
    const timer = this.deps.clock
      .sleepUntil(deadline, AbortSignal.any([timerCtrl.signal, this.deps.drain]))
      .then(() => 'timeout' as const);
    let o: Outcome;
    try {
      const first = await Promise.race([child, timer]);
      if (first === 'timeout') {
        childCtrl.abort('timeout');
        child.catch(() => undefined); // unwinds with Aborted once its SQL is cancelled
        o = fail(`Timed out: did not finish within ${cfg.seconds}s`);
      } else {
        timerCtrl.abort('done');
        timer.catch(() => undefined);
        o = first;
      }
    } catch (err) {
      timerCtrl.abort('done');
      timer.catch(() => undefined);
      childCtrl.abort('unwinding');
      child.catch(() => undefined);
      throw err;
    } finally {
      scope.signal.removeEventListener('abort', onParentAbort);
    }
    return this.finished(node, scope, o);
  }

  /**
   * A LOOP that is not the root: iterations are generations of the child scope `loopScope`
   * (stamps `<loopScope>::1`, `::2`, ...); named results carry over between iterations and out.
   */
  private async loop(node: TreeNode, scope: Scope, loopScope: string): Promise<Outcome> {
    let prev: { stamp: string; result: string } | null = null;
    for (let g = 1; ; g++) {
      const iter: Scope = { stamp: `${loopScope}::${g}`, results: scope.results, signal: scope.signal };
      const startedAt = await this.iterationStart(node, iter.stamp, prev);
      const step = await this.iteration(node, iter);
      if (step.done) return this.finished(node, iter, step.o); // iter shares scope.results
      if (g >= MAX_LOOP_ITERATIONS) {
        return this.finished(node, iter, fail(`Loop exceeded maximum iteration count of ${MAX_LOOP_ITERATIONS}. Use df.break() to exit the loop or restructure the workflow.`));
      }
      await this.deps.clock.sleepUntil(startedAt + LOOP_FLOOR_MS, this.interruptible(scope));
      prev = { stamp: iter.stamp, result: step.o.kind === 'ok' ? step.o.result : 'null' };
    }
  }

  /** Body, then the while-condition (a break in either ends the loop with its value). */
  private async iteration(node: TreeNode, iter: Scope): Promise<{ done: boolean; o: Outcome }> {
    const body = await this.exec(node.left!, iter);
    if (body.kind === 'break') return { done: true, o: ok(body.value) };
    if (body.kind === 'fail') return { done: true, o: body };
    if (node.condition) {
      const c = await this.exec(node.condition, iter);
      if (c.kind === 'break') return { done: true, o: ok(c.value) };
      if (c.kind === 'fail') return { done: true, o: c };
      if (!conditionIsTrue(c.result)) return { done: true, o: body };
    }
    return { done: false, o: body };
  }

  /** Stamps the LOOP node running for a new iteration (closing the previous one); returns its start time. */
  private async iterationStart(node: TreeNode, stamp: string, prev: { stamp: string; result: string } | null): Promise<number> {
    const rec = this.runs.get(stamp, node.id);
    if (rec) return Number(rec.detail?.started_at ?? this.deps.clock.now());
    const startedAt = this.deps.clock.now();
    const events: NodeEvent[] = [];
    if (prev) events.push({ node: node.id, stamp: prev.stamp, status: 'completed', result: prev.result, json: isJson(prev.result) });
    events.push({ node: node.id, stamp, status: 'running', detail: { started_at: startedAt } });
    this.defer(events);
    return startedAt;
  }

  /**
   * The root LOOP: every iteration is a new execution (continue-as-new). Named results do not carry
   * over between executions; the graph and the captured variables do.
   */
  private async rootLoop(node: TreeNode): Promise<Outcome> {
    for (;;) {
      this.rootResults = {};
      const scope = this.rootScope();
      const rec = this.recorded(scope.stamp, node);
      let startedAt: number;
      if (rec) startedAt = Number(rec.detail?.started_at ?? this.deps.clock.now());
      else {
        startedAt = this.deps.clock.now();
        await this.runs.write([{ node: node.id, stamp: scope.stamp, status: 'running', detail: { started_at: startedAt } }], 'running');
      }
      const step = await this.iteration(node, scope);
      if (step.done) {
        this.rootEvent = this.event(node, scope.stamp, step.o);
        return step.o;
      }
      if (this.inst.executionId >= MAX_LOOP_ITERATIONS) {
        const o = fail(`Loop exceeded maximum iteration count of ${MAX_LOOP_ITERATIONS}. Use df.break() to exit the loop or restructure the workflow.`);
        this.rootEvent = this.event(node, scope.stamp, o);
        return o;
      }
      await this.deps.clock.sleepUntil(startedAt + LOOP_FLOOR_MS, AbortSignal.any([this.signal, this.deps.drain]));
      const output = step.o.kind === 'ok' ? step.o.result : null;
      // Names the execution it closes, so a retry after an ambiguous commit cannot open two.
      await this.runs.write([], `continue:${this.inst.executionId}` as InstanceTransition, output);
      this.inst.executionId += 1;
      this.runs.forget();
      this.undos = new UndoStack([], this.byId); // an execution's undos end with it (continue-as-new)
      this.deps.log.info({ instance: this.inst.id, execution: this.inst.executionId }, 'loop continues as new execution');
    }
  }
}
