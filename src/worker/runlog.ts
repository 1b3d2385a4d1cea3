/**
 * What one run of an instance has recorded, and how it becomes durable: the history of node runs
 * (loaded at claim, extended as nodes start and finish), the events that may wait for the next
 * durable write, the writes themselves through df._commit, and a SQL step whose checkpoint is held
 * back to travel with the next step (src/worker/steps.ts, Parked).
 */
import { jsonbCompactText } from '../core/jsonb-text';
import { metrics } from './metrics';
import { LeaseLost, ParkedCheckpointFailed, type StepRunner } from './steps';
import type { InstanceTransition, NodeEvent, RunRecord, Store } from './store';

export interface Batch {
  events: NodeEvent[];
  /** The pending events it carries, as they were when taken. */
  taken: [string, NodeEvent][];
}

const keyOf = (stamp: string, nodeId: string) => `${stamp}|${nodeId}`;

/** A transition after which nothing of the instance is written again (its queue row is gone). */
const endsInstance = (t: InstanceTransition | null) => t === 'completed' || t === 'failed' || t === 'cancelled';

/**
 * The longest result (or execution output) left to a node row for df._runs (df._execution_log) to
 * render back: a reader renders it from jsonb at every read (df._json_compact), so a large one
 * keeps its row (one-step results of the bench and the seeds are 30-200 bytes).
 */
const DERIVED_OUTPUT_MAX = 4096;

/** Whether a row's jsonb gives `text` back as it is (df._json_compact; src/core/jsonb-text.ts). */
const readsBack = (text: string) => text.length <= DERIVED_OUTPUT_MAX && jsonbCompactText(text) === text;

/** Later fields win; details merge. */
const merge = (prev: NodeEvent | undefined, e: NodeEvent): NodeEvent =>
  prev ? { ...prev, ...e, detail: { ...(prev.detail ?? {}), ...(e.detail ?? {}) } } : e;

export class RunLog {
  private history = new Map<string, RunRecord>();
  /**
   * Events whose durability can wait (composite stamps, loop starts, RACE winners, BREAKs): replay
   * does not need them on their own, so they ride along with the next durable write, e.g. inside
   * the next step's transaction: a RACE winner becomes durable together with the first effect that
   * depends on it. Keyed by stamp|node; coalesced.
   */
  private readonly pending = new Map<string, NodeEvent>();
  /**
   * The last SQL step's events when its checkpoint is held back: recorded here as done, not
   * durable yet (`done`: the step and what it ends; `taken`: the pending events it carries).
   */
  private unconfirmed: { done: NodeEvent[]; taken: [string, NodeEvent][] } | null = null;
  /**
   * Every run a write may have recorded in df._node_runs (stamp|node): loaded at claim, or sent in
   * any write since (not as `final`), whether or not that write committed. Only a run outside it
   * may be left to its node's row: a run row would hide the row's newer state (df._runs).
   */
  private readonly written = new Set<string>();

  constructor(
    private readonly store: Store,
    private readonly steps: StepRunner,
    private readonly inst: { id: string; token: string; started: boolean; executionId: number },
    history: RunRecord[],
    private readonly rootId: string,
    /** Nodes that run at most once per execution with plain events (Interpreter.runOnce). */
    private readonly once: ReadonlySet<string> = new Set(),
  ) {
    for (const r of history) {
      this.history.set(keyOf(r.stamp, r.nodeId), r);
      this.written.add(keyOf(r.stamp, r.nodeId));
    }
  }

  /** Notes the runs a write is about to send (before it is sent: a failed send may still have committed). */
  sending(events: NodeEvent[]): void {
    for (const e of events) this.written.add(keyOf(e.stamp, e.node));
  }

  /**
   * What a commit with `transition` (and the execution's `output`) sends of `events`, noted as
   * sent. A node's last event is marked `final` where no write recorded its run before and the
   * node's row can keep the run: df._commit then writes only the row (df._runs reads the run from
   * it). In a commit that ends the instance, any finished event (nothing writes those rows again);
   * in any other, an event of a node that runs once per execution with a result the row gives back
   * as sent (`keptByRow`). It spared a one-step instance one of its completion's five writes, a
   * chain step its node runs (docs/PERFORMANCE.md, "Runs kept by node rows", "... in a sequence").
   * In a commit that completes execution 1, the root's last event is marked `output` where its
   * result is the output as jsonb prints it compactly (src/core/jsonb-text.ts): df._commit then
   * writes no execution row, df._execution_log derives it ("Executions kept by instance rows").
   */
  outgoing(events: NodeEvent[], transition: InstanceTransition | null, output: string | null = null): NodeEvent[] {
    const ends = endsInstance(transition);
    const last = new Map<string, number>();
    events.forEach((e, i) => last.set(e.node, i));
    const kept = ends && this.keptOutput(events, last.get(this.rootId), transition, output);
    const sent = events.map((e, i) => {
      if (last.get(e.node) !== i) return e;
      const marks: Partial<NodeEvent> = {};
      const unwritten = !this.written.has(keyOf(e.stamp, e.node));
      if (unwritten && (ends ? e.status !== 'running' : this.keptByRow(e))) marks.final = true;
      if (kept && e.node === this.rootId) marks.output = true;
      return marks.final || marks.output ? { ...e, ...marks } : e;
    });
    // A final event writes no row: a later event of its run may be left to the row again.
    this.sending(sent.filter((e) => !e.final));
    return sent;
  }

  /**
   * Whether a run that is not ending its instance can live in its node's row alone: a node that
   * runs once per execution (`once`), an event with no detail, and a result the row gives back as
   * it was sent: JSON that jsonb prints compactly as the same text (df._runs reads it with
   * df._json_compact), so a replay substitutes exactly what the live run did. A failure keeps its
   * row (its message is not JSON).
   */
  private keptByRow(e: NodeEvent): boolean {
    if (!this.once.has(e.node) || (e.detail && Object.keys(e.detail).length > 0)) return false;
    if (e.status === 'running') return true;
    return e.status === 'completed' && e.json === true && typeof e.result === 'string' && readsBack(e.result);
  }

  /** Whether the root's event at `at` carries the output of a completed first execution, as df._execution_log reads it. */
  private keptOutput(events: NodeEvent[], at: number | undefined, transition: InstanceTransition | null, output: string | null): boolean {
    if (transition !== 'completed' || this.inst.executionId !== 1 || at === undefined || output === null) return false;
    const root = events[at];
    return root.status === 'completed' && root.json === true && root.result === output && readsBack(output);
  }

  get(stamp: string, nodeId: string): RunRecord | undefined {
    return this.history.get(keyOf(stamp, nodeId));
  }

  put(rec: RunRecord): void {
    this.history.set(keyOf(rec.stamp, rec.nodeId), rec);
  }

  records(): Iterable<RunRecord> {
    return this.history.values();
  }

  /** A new execution (continue-as-new) starts with no history. */
  forget(): void {
    this.history = new Map();
  }

  record(events: NodeEvent[]): void {
    for (const e of events) {
      const k = keyOf(e.stamp, e.node);
      const prev = this.history.get(k);
      this.history.set(k, { stamp: e.stamp, nodeId: e.node, status: e.status, result: e.result ?? null, detail: { ...(prev?.detail ?? {}), ...(e.detail ?? {}) } });
    }
  }

  /** Queues events that may wait for the next durable write (see `pending`). */
  defer(events: NodeEvent[]): void {
    for (const e of events) {
      const k = keyOf(e.stamp, e.node);
      this.pending.set(k, merge(this.pending.get(k), e));
    }
    this.record(events);
  }

  /** The pending events (snapshot) followed by `events`, coalesced per stamp and node. */
  withPending(events: NodeEvent[]): Batch {
    const taken = [...this.pending.entries()];
    const merged = new Map(taken);
    for (const e of events) {
      const k = keyOf(e.stamp, e.node);
      merged.set(k, merge(merged.get(k), e));
    }
    return { events: [...merged.values()], taken };
  }

  /** After a successful commit: drop what it carried (parallel branches may have queued more meanwhile). */
  committed(batch: { taken: [string, NodeEvent][] }): void {
    for (const [k, e] of batch.taken) if (this.pending.get(k) === e) this.pending.delete(k);
  }

  clearPending(): void {
    this.pending.clear();
  }

  /** A write without a transition of its own marks a still pending instance running. */
  withStart(t: InstanceTransition | null): InstanceTransition | null {
    return t === null && !this.inst.started ? 'running' : t;
  }

  /** A durable write: `events` plus everything pending, and the instance transition if any. */
  async write(events: NodeEvent[], transition: InstanceTransition | null = null, output: string | null = null): Promise<void> {
    await this.durable(); // durable in the order they happened
    const batch = this.withPending(events);
    if (batch.events.length === 0 && transition === null) return;
    const t = this.withStart(transition);
    const sent = this.outgoing(batch.events, t, output);
    await this.commit(() => metrics.checkpoint('write', () => this.store.commit(this.inst.id, this.inst.token, sent, t, output))); // metrics
    this.inst.started = true;
    this.committed(batch);
    this.record(events);
  }

  /** A df._commit on a worker connection; a lost lease is LeaseLost. */
  async commit(run: () => Promise<unknown>): Promise<void> {
    try {
      await run();
    } catch (err) {
      if ((err as { code?: string }).code === 'PD001') throw new LeaseLost((err as Error).message);
      throw err;
    }
  }

  /**
   * A SQL step's checkpoint (its batch, taken from pending) went into the step's transaction: held
   * back or durable. The step that completes the instance is never held back (its request does not
   * chain), so taking a held-back step back never un-ends the instance.
   */
  stepCommitted(batch: Batch, done: NodeEvent[], held: boolean): void {
    this.inst.started = true;
    this.committed(batch);
    this.record(batch.events);
    this.unconfirmed = held ? { done, taken: batch.taken } : null;
  }

  /**
   * Makes what a held-back checkpoint carries durable (a no-op when nothing is held back). Refused
   * (ParkedCheckpointFailed): its step is running again here and its pending events pending again.
   */
  async durable(): Promise<void> {
    try {
      await this.steps.commitParked(this.inst.id);
    } catch (err) {
      if (err instanceof ParkedCheckpointFailed) this.revert();
      throw err;
    }
    this.unconfirmed = null;
  }

  /** The held-back checkpoint was refused: its step (and what would have ended with it) is still running. */
  revert(): void {
    const u = this.unconfirmed;
    this.unconfirmed = null;
    if (!u) return;
    for (const [k, e] of u.taken) if (!this.pending.has(k)) this.pending.set(k, e);
    this.record(u.done.map((e) => ({ node: e.node, stamp: e.stamp, status: 'running' as const })));
  }
}
