/**
 * The worker process: claims due instances (FOR UPDATE SKIP LOCKED + lease), runs them
 * concurrently, heartbeats (df._worker_epoch + lease renewal), wakes on NOTIFY pg_durable with
 * polling as a fallback, survives PostgreSQL restarts by reconnecting with backoff, and shuts down
 * gracefully: stop claiming, let in-flight steps finish up to a deadline, hand leases back.
 *
 * It may start before its database or pg_durable exists (compose, systemd, a fresh `make
 * installcheck` database): it probes, logs once what it waits for, and starts working when
 * `CREATE EXTENSION pg_durable` has run. A working period is a session (one epoch row, one LISTEN
 * connection, one heartbeat, one claim loop). If pg_durable or the database disappears underneath
 * it (DROP EXTENSION, DROP DATABASE) the session ends, in-memory instances are dropped (their rows
 * went with the extension) and the worker waits again; a re-created extension gets a new session.
 */
import { randomUUID } from 'node:crypto';
import type http from 'node:http';
import pg from 'pg';
import { systemClock, type Clock } from './clock';
import { databaseOf, type WorkerConfig } from './config';
import { defaultEgressPolicy } from './http';
import { metrics, serveMetrics } from './metrics';
import { runInstance } from './instance';
import type { Deps, InstanceState } from './interpreter';
import type { Logger } from './log';
import { SignalHub } from './signals';
import { MAX_HOLD_MS, ReadAhead } from './readahead';
import { CheckpointLost, StepRunner } from './steps';
import { Store, type Readiness } from './store';
import { backoffMs, isTransient, missingSetup } from './transient';

/** Claims per round trip; a full batch means "look again at once". */
const CLAIM_BATCH = 50;
/**
 * A claim costs PostgreSQL about 0.3 ms whether it takes one instance or five. While most step
 * slots are busy (fewer than 40 % free: 1–3 of 10), the loop waits CLAIM_GATHER_MS before
 * claiming, so the completions of that millisecond share one claim instead of one claim each:
 * 4 000 one-step instances took 950 claims instead of 1 324, PostgreSQL CPU per instance
 * 0.677 / 0.735 → 0.632 / 0.640 ms (docs/PERFORMANCE.md). An idle or lightly loaded worker claims
 * at once, so a lone start is not delayed.
 */
const CLAIM_GATHER_MS = 1;
/** How long dropped instances (pg_durable gone) may take to stop before the worker moves on. */
const DROP_WAIT_MS = 30_000;

interface Active {
  controller: AbortController;
  done: Promise<void>;
  state: InstanceState | null;
  /** Claimed with a compensate request: it compensates already, a compensate wake-up is not for it. */
  compensating: boolean;
}

type Ready = Extract<Readiness, { state: 'ready' }>;
/** Why a session ended other than by shutdown. */
type Lost = Exclude<Readiness, Ready> | { state: 'recreated'; detail: string };

/** One working period: registered epoch, LISTEN connection, heartbeat, claim loop. */
interface Session {
  epoch: string;
  /** pg_durable's pg_extension oid when the session started (null: installed without CREATE EXTENSION). */
  extension: string | null;
  /** Aborted when the session ends: shutdown, or pg_durable / the database went away. */
  end: AbortController;
  lost: Lost | null;
  listener: pg.Client | null;
  heartbeat: NodeJS.Timeout | null;
  loop: Promise<void> | null;
  checking: boolean;
}

/** Resolves after `ms`, or at once when one of the signals aborts. */
function pause(ms: number, signals: AbortSignal[]): Promise<void> {
  return new Promise((resolve) => {
    if (signals.some((s) => s.aborted)) return resolve();
    const done = () => {
      clearTimeout(timer);
      for (const s of signals) s.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    for (const s of signals) s.addEventListener('abort', done, { once: true });
  });
}

export class Worker {
  private readonly store: Store;
  private readonly steps: StepRunner;
  private readonly hub = new SignalHub();
  private readonly active = new Map<string, Active>();
  private readonly deps: Deps;
  private readonly database: string;
  private session: Session | null = null;
  private stopping = false;
  private stopped: Promise<void> | null = null;
  private graceSeconds: number;
  private wake: (() => void) | null = null;
  /** A poke came while the claim loop was not waiting (see poke). */
  private poked = false;
  /**
   * Whether due work may be left behind the last claim: false once a claim came back with fewer
   * instances than it asked for (the queue had no more due rows in its snapshot). A finished
   * instance frees a slot; only then is claiming again worth a claim's ~0.3 ms of PostgreSQL. Work
   * that becomes due later announces itself (NOTIFY: starts, signals, cancels) or is found by the
   * poll. Every one-step instance of an idle worker was followed by an empty claim.
   */
  private backlog = true;
  /** Instances claimed that have not reached their first leaf yet (see room). */
  private starting = 0;
  /** Claimed instances held, not started, until a step slot frees (src/worker/readahead.ts). */
  private readonly ahead: ReadAhead;
  private main: Promise<void> | null = null;
  private superuserCache: { at: number; value: boolean } | null = null;
  private readonly drain = new AbortController();
  /** Wake-ups whose question is in flight (store.concerned), true when another came meanwhile. */
  private readonly asking = new Map<string, boolean>();
  /** Aborted by stop(): ends waiting, probing and pauses at once. */
  private readonly halt = new AbortController();
  private readonly ready: Promise<void>;
  private markReady!: () => void;
  private metricsServer: Promise<http.Server | null> | null = null; // metrics

  constructor(
    private readonly config: WorkerConfig,
    private readonly log: Logger,
    clock: Clock = systemClock(config.clockSpeed),
    version = '0.0.0',
  ) {
    this.store = new Store(config.databaseUrl, 10, () => this.stopping);
    this.steps = new StepRunner(config, this.store, log);
    this.ahead = new ReadAhead(2 * config.maxStepConnections);
    this.database = databaseOf(config.databaseUrl);
    this.graceSeconds = config.shutdownGraceSeconds;
    this.ready = new Promise((resolve) => {
      this.markReady = resolve;
    });
    const egress = {
      ...defaultEgressPolicy(version),
      allowLoopback: config.httpAllowLoopback,
      allowPrivate: config.httpAllowPrivate,
      allowIpLiterals: config.httpAllowIpLiterals,
      allowedHosts: config.httpAllowedHosts,
      maxRetries: config.httpMaxRetries,
      maxResponseBytes: config.maxResultBytes,
    };
    metrics.setActiveSource(() => this.active.size); // metrics
    this.deps = { store: this.store, steps: this.steps, clock, log, hub: this.hub, egress, drain: this.drain.signal, maxResultBytes: config.maxResultBytes };
  }

  /** The current session's epoch id (df._worker_epoch), null while waiting. */
  get epoch(): string | null {
    return this.session?.epoch ?? null;
  }

  /**
   * Starts the worker in the background. Resolves once it is working (pg_durable found, epoch
   * registered, LISTEN on), or when stop() is called while it still waits for the database or the
   * extension. Never rejects: whatever is missing is waited for.
   */
  start(): Promise<void> {
    if (!this.main) this.main = this.supervise();
    this.metricsServer ??= this.serveMetrics(); // metrics
    return this.ready;
  }

  /** Wait for readiness, run a session until it ends, repeat until stopped. */
  private async supervise(): Promise<void> {
    let logged: string | null = null; // the waiting reason already logged (log again only when it changes)
    let failures = 0;
    let failure: string | null = null;
    while (!this.stopping) {
      try {
        const ready = await this.waitUntilReady(logged);
        if (!ready) break;
        logged = null;
        const outcome = await this.runSession(ready);
        if (outcome.kind === 'stopped') break;
        if (outcome.kind === 'lost') {
          logged = outcome.logged;
          failures = 0;
          continue;
        }
        // The database looks ready but registering failed (privileges, say): say so once per reason.
        const message = (outcome.err as Error).message;
        if (missingSetup(outcome.err) === null && message !== failure) {
          failure = message;
          this.log.warn({ database: this.database, err: message }, 'cannot start working in this database yet; retrying');
        }
        await pause(backoffMs(Math.min(failures++ + 2, 10)), [this.halt.signal]);
      } catch (err) {
        this.log.error({ err: (err as Error).message }, 'worker supervisor error; retrying');
        await pause(backoffMs(Math.min(failures++ + 2, 10)), [this.halt.signal]);
      }
    }
    this.markReady();
  }

  /** Probes until pg_durable is there (null when stopped), logging each new reason to wait once. */
  private async waitUntilReady(alreadyLogged: string | null): Promise<Ready | null> {
    let last = alreadyLogged;
    for (let attempt = 0; !this.stopping; attempt++) {
      const r = await this.store.probe(this.halt.signal);
      if (this.stopping) return null;
      if (r.state === 'ready') return r;
      const key = r.state === 'error' ? `error:${r.detail}` : r.state;
      if (key !== last) {
        last = key;
        this.logWaiting(r);
      }
      await pause(backoffMs(Math.min(attempt + 2, 10)), [this.halt.signal]);
    }
    return null;
  }

  private logWaiting(r: Exclude<Readiness, Ready>, extra: Record<string, unknown> = {}): void {
    const database = this.database;
    switch (r.state) {
      case 'no-database':
        this.log.info({ database, ...extra }, `waiting for database "${database}" to exist`);
        break;
      case 'no-extension':
        this.log.info({ database, ...extra }, `waiting for CREATE EXTENSION pg_durable in database "${database}"`);
        break;
      case 'no-server':
        this.log.warn({ database, err: r.detail, ...extra }, 'waiting for PostgreSQL to accept connections');
        break;
      default:
        this.log.warn({ database, err: r.detail, ...extra }, `waiting: cannot use database "${database}"`);
    }
  }

  private ended(session: Session): boolean {
    return this.stopping || session.end.signal.aborted;
  }

  /** One working period; returns how it ended. */
  private async runSession(ready: Ready): Promise<{ kind: 'stopped' } | { kind: 'lost'; logged: string | null } | { kind: 'failed'; err: unknown }> {
    const session: Session = {
      epoch: randomUUID(), extension: ready.extension, end: new AbortController(), lost: null,
      listener: null, heartbeat: null, loop: null, checking: false,
    };
    this.session = session;
    this.superuserCache = null;
    try {
      try {
        await this.store.registerEpoch(session.epoch);
        metrics.beat(); // metrics
        await this.steps.loadTypeNames();
      } catch (err) {
        if (this.stopping) return { kind: 'stopped' };
        return { kind: 'failed', err };
      }
      await this.listen(session);
      if (!this.ended(session)) {
        session.heartbeat = setInterval(() => void this.heartbeat(session), this.config.heartbeatSeconds * 1000);
        session.loop = this.claimLoop(session);
        this.log.info({ epoch: session.epoch, database: this.database, extension: ready.version, concurrency: this.config.maxStepConnections }, 'worker started');
        this.markReady();
        while (!this.ended(session)) await pause(2 ** 31 - 1, [session.end.signal, this.halt.signal]);
      }
      return await this.endSession(session);
    } finally {
      if (session.heartbeat) clearInterval(session.heartbeat);
      if (this.session === session) this.session = null;
      metrics.idle(); // metrics
    }
  }

  private async endSession(session: Session): Promise<{ kind: 'stopped' } | { kind: 'lost'; logged: string | null }> {
    session.end.abort('ended');
    this.poke();
    await session.loop;
    const lost = session.lost;
    if (lost === null) {
      // Shutdown. Waits (timers, signals) stop at once; SQL steps in flight get the grace period, then are cancelled.
      const inFlight = [...this.active.values()].map((a) => a.done);
      this.log.info({ inFlight: inFlight.length, graceSeconds: this.graceSeconds }, 'shutting down: waiting for in-flight steps');
      this.drain.abort('shutdown');
      let graceTimer: NodeJS.Timeout | undefined;
      const deadline = new Promise<'timeout'>((resolve) => {
        graceTimer = setTimeout(() => resolve('timeout'), this.graceSeconds * 1000);
      });
      const result = await Promise.race([Promise.all(inFlight).then(() => 'done' as const), deadline]);
      clearTimeout(graceTimer);
      if (result === 'timeout') {
        for (const a of this.active.values()) a.controller.abort('shutdown');
        await Promise.all([...this.active.values()].map((a) => a.done));
      }
      if (session.heartbeat) clearInterval(session.heartbeat);
      await this.store.release(session.epoch).catch(() => undefined);
      await this.store.dropEpoch(session.epoch);
      await this.closeListener(session);
      return { kind: 'stopped' };
    }
    // pg_durable (or the database) went away: the instances' rows went with it, drop them from memory.
    if (session.heartbeat) clearInterval(session.heartbeat);
    const dropped = [...this.active.values()];
    for (const a of dropped) a.controller.abort('pg_durable dropped');
    let dropTimer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all(dropped.map((a) => a.done)),
      new Promise<void>((resolve) => {
        dropTimer = setTimeout(resolve, DROP_WAIT_MS);
      }),
    ]);
    clearTimeout(dropTimer);
    await this.closeListener(session);
    await this.store.dropEpoch(session.epoch); // the table is gone with the extension, unless it was re-created
    if (lost.state === 'recreated') {
      this.log.warn({ database: this.database, dropped: dropped.length }, 'pg_durable was dropped and created again: dropped the in-memory instances, starting over');
      return { kind: 'lost', logged: null };
    }
    this.logWaiting(lost, { dropped: dropped.length, reason: lost.state === 'no-database' ? 'database dropped' : 'pg_durable dropped' });
    return { kind: 'lost', logged: lost.state === 'error' ? `error:${lost.detail}` : lost.state };
  }

  /**
   * Something failed in a way that may mean pg_durable or the database is gone: confirm with a
   * probe and end the session if so (also when the extension was re-created: a new oid).
   */
  private async checkLost(session: Session): Promise<void> {
    if (session.checking || this.ended(session)) return;
    session.checking = true;
    try {
      const r = await this.store.probe(session.end.signal);
      if (this.ended(session)) return;
      if (r.state === 'no-database' || r.state === 'no-extension') session.lost = r;
      else if (r.state === 'ready' && r.extension !== session.extension) session.lost = { state: 'recreated', detail: `extension oid ${session.extension} -> ${r.extension}` };
      else return;
      session.end.abort('lost');
    } finally {
      session.checking = false;
    }
  }

  private async closeListener(session: Session): Promise<void> {
    const client = session.listener;
    session.listener = null;
    await client?.end().catch(() => undefined);
  }

  private async listen(session: Session): Promise<void> {
    for (let attempt = 0; !this.ended(session); attempt++) {
      const client = new pg.Client({ connectionString: this.config.databaseUrl, application_name: 'pg_durable:worker:poll' });
      try {
        await client.connect();
        await client.query('LISTEN pg_durable');
      } catch (err) {
        await client.end().catch(() => undefined);
        if (this.ended(session)) return;
        if (missingSetup(err) !== null) void this.checkLost(session);
        this.log.warn({ err: (err as Error).message, attempt: attempt + 1 }, 'cannot LISTEN yet, retrying');
        await pause(backoffMs(attempt), [session.end.signal, this.halt.signal]);
        continue;
      }
      if (this.ended(session)) {
        await client.end().catch(() => undefined);
        return;
      }
      client.on('notification', (n) => this.onNotification(n.payload ?? ''));
      client.on('error', (err) => {
        client.end().catch(() => undefined);
        if (session.listener !== client) return; // closed on purpose
        session.listener = null;
        if (this.ended(session)) return;
        this.log.warn({ err: err.message }, 'notification connection lost; reconnecting');
        void this.listen(session);
      });
      session.listener = client;
      this.poke(); // anything that happened while we were not listening
      return;
    }
  }

  /**
   * A wake-up on channel pg_durable: `start`, `cancel`, `compensate` or `signal`. The extension
   * names no instance (any role may LISTEN, src/sql/40_engine.sql), so for the last three the
   * worker asks which of its own instances it may concern: the runs it holds or runs for a cancel
   * or a compensating cancel, those waiting for a signal for a signal. An older extension sent
   * `kind:<id>`; that id is taken as is.
   */
  private onNotification(payload: string): void {
    const [kind, id] = payload.split(':');
    if (kind !== 'cancel' && kind !== 'compensate' && kind !== 'signal') return this.poke();
    if (id !== undefined) return this.onControl(kind, [id]);
    const mine =
      kind === 'signal'
        ? this.hub.waiting()
        : [...this.ahead.ids(), ...[...this.active].filter(([, a]) => !(kind === 'compensate' && a.compensating)).map(([i]) => i)];
    if (mine.length === 0) return this.poke();
    // One question per kind at a time: wake-ups of the same kind that arrive meanwhile are answered
    // by one more question when it returns (a burst of signals to 1 000 waiting instances costs two).
    if (this.asking.has(kind)) {
      this.asking.set(kind, true);
      return;
    }
    this.asking.set(kind, false);
    this.store.concerned(kind, mine).then(
      (ids) => this.onControl(kind, ids),
      (err) => {
        // Nothing is lost: a cancelled run fails its next checkpoint (the queue row is gone), a
        // signal's waiter looks again within SIGNAL_RECHECK_MS, and the claim below finds the rest.
        this.log.warn({ err: (err as Error).message, kind }, 'cannot tell which instances a wake-up concerns');
        this.poke();
      },
    ).finally(() => {
      const again = this.asking.get(kind);
      this.asking.delete(kind);
      if (again) this.onNotification(kind);
    });
  }

  private onControl(kind: 'cancel' | 'compensate' | 'signal', ids: string[]): void {
    for (const id of ids) {
      if (kind !== 'signal' && this.session && this.ahead.drop(id)) {
        // Held, not started: it must not start from what the claim read before the cancel. A
        // cancelled instance's queue row is gone; a compensating one is claimed again, with its request.
        this.backlog = true;
        void this.store.release(this.session.epoch, [id]).catch(() => undefined).finally(() => this.poke());
        continue;
      }
      if (kind === 'signal') {
        this.hub.notify(id);
        continue;
      }
      const a = this.active.get(id);
      if (!a) continue;
      if (kind === 'cancel') {
        this.log.info({ instance: id }, 'cancel requested: stopping in-flight work');
        a.controller.abort('cancelled');
      } else if (!a.compensating) {
        // df.cancel(..., compensate => true): stop the run; it resumes at once in compensating mode.
        this.log.info({ instance: id }, 'compensating cancel requested: stopping in-flight work');
        a.compensating = true;
        a.controller.abort('compensate');
      }
    }
    if (kind !== 'cancel') this.poke();
  }

  private poke(): void {
    const w = this.wake;
    this.wake = null;
    // No loop waiting: it is claiming right now, and that claim's snapshot may predate what the
    // poke announces (an instance committed meanwhile). It claims again instead of sleeping a
    // whole poll interval.
    if (w) w();
    else this.poked = true;
  }

  private async heartbeat(session: Session): Promise<void> {
    try {
      const { extension } = await this.store.heartbeat(session.epoch, this.config.leaseSeconds, [...this.active.keys()]);
      metrics.beat(); // metrics
      if (extension !== session.extension) void this.checkLost(session);
    } catch (err) {
      // pg_durable missing: checkLost confirms it and logs the one line that matters.
      if (missingSetup(err) !== null) this.log.debug({ err: (err as Error).message }, 'heartbeat failed');
      else this.log.warn({ err: (err as Error).message }, 'heartbeat failed');
      if (!isTransient(err)) void this.checkLost(session);
    }
  }

  private async superuserAllowed(): Promise<boolean> {
    const now = Date.now();
    if (!this.superuserCache || now - this.superuserCache.at > 5000) {
      this.superuserCache = { at: now, value: await this.store.superuserInstancesEnabled() };
    }
    return this.superuserCache.value;
  }

  private async claimLoop(session: Session): Promise<void> {
    let failures = 0;
    while (!this.ended(session)) {
      let claimed = 0;
      await this.handBack(session);
      // Free slots take the held instances first; claiming is for what is left.
      let room = this.room();
      while (room > 0 && this.ahead.size > 0) {
        this.dispatch(this.ahead.take()!, session);
        room = this.room();
      }
      // Claim no more than we can start executing now (free step slots), so several workers share
      // a backlog instead of the first one hoarding it; waiting instances hold no slot. The
      // read-ahead adds a few while instances finish quickly, claimed when it runs low.
      const target = this.ahead.target();
      const extra = room > 0 || this.ahead.size <= Math.floor(target / 3) ? Math.max(0, target - this.ahead.size) : 0;
      if (room > 0 && room < Math.max(2, Math.ceil(this.config.maxStepConnections * 0.4)) && this.active.size > 0 && extra === 0) {
        await pause(CLAIM_GATHER_MS, [session.end.signal, this.halt.signal]);
        if (this.ended(session)) break;
        room = this.room();
      }
      const want = Math.min(room + extra, this.config.maxInstances - this.active.size - this.ahead.size);
      if (want > 0) {
        try {
          const asked = Math.min(CLAIM_BATCH, want);
          const claims = await this.store.claim(session.epoch, asked, this.config.leaseSeconds);
          claimed = claims.length;
          this.backlog = claimed === asked;
          metrics.claims.inc(); // metrics
          metrics.claimed.inc(claimed); // metrics
          failures = 0;
          for (const c of claims) {
            // One of ours whose lease expired and came back (a re-claim) takes its new token at once.
            if (this.active.has(c.instanceId) || (this.ahead.size === 0 && this.room() > 0)) this.dispatch(c, session);
            else this.ahead.hold(c);
          }
        } catch (err) {
          if (this.ended(session)) break;
          failures++;
          this.backlog = true;
          if (missingSetup(err) !== null) this.log.debug({ err: (err as Error).message }, 'claim failed; backing off');
          else this.log.warn({ err: (err as Error).message }, 'claim failed; backing off');
          if (!isTransient(err)) void this.checkLost(session);
          await pause(backoffMs(failures), [session.end.signal, this.halt.signal]);
          continue;
        }
      } else this.backlog = true; // no room to claim: what is due stayed in the queue
      if (claimed === CLAIM_BATCH && !this.ended(session)) continue;
      if (this.ended(session)) break;
      if (this.poked) {
        this.poked = false;
        continue;
      }
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, this.ahead.size > 0 ? Math.min(this.config.pollIntervalMs, MAX_HOLD_MS) : this.config.pollIntervalMs);
        this.wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
    // The session ended: held instances go back with its leases (shutdown) or went with pg_durable.
    this.ahead.clear();
  }

  /** Hands back the claims held longer than MAX_HOLD_MS (their slots stayed busy), for any worker. */
  private async handBack(session: Session): Promise<void> {
    const expired = this.ahead.expired();
    if (expired.length === 0) return;
    this.backlog = true;
    await this.store.release(session.epoch, expired.map((c) => c.instanceId)).catch((err) => {
      this.log.warn({ err: (err as Error).message }, 'could not hand back held instances; their leases expire');
    });
  }

  /**
   * Instances to claim now, within --max-instances: no more than can start executing (step slots
   * not taken, not waited for, not about to be taken by an instance claimed but not yet at its
   * first step), and at least one while nothing waits for a slot (an instance may need none: a
   * SLEEP, an HTTP call). With "at least one" regardless and claimed instances not counted, a busy
   * worker's queue grew at every claim: queued instances outlived RUNNING_STAMP_DELAY_MS and their
   * 'running' stamps raced their own completions, and other workers found the backlog taken.
   */
  private room(): number {
    const waiting = this.steps.queued + this.starting;
    const free = this.config.maxStepConnections - this.steps.busy - waiting;
    return Math.min(this.config.maxInstances - this.active.size, free > 0 ? free : waiting === 0 ? 1 : 0);
  }

  private dispatch(claim: Awaited<ReturnType<Store['claim']>>[number], session: Session): void {
    const running = this.active.get(claim.instanceId);
    if (running) {
      // Our own lease expired and we re-claimed: keep running with the new token.
      if (running.state) running.state.token = claim.token;
      return;
    }
    const controller = new AbortController();
    const entry: Active = { controller, done: Promise.resolve(), state: null, compensating: false };
    this.starting++;
    let starting = true;
    const started = () => {
      if (starting) this.starting--;
      starting = false;
    };
    entry.done = runInstance(this.deps, claim, controller.signal, {
      defaultDatabase: this.database,
      superuserAllowed: () => this.superuserAllowed(),
      firstLeaf: started,
      compensating: () => void (entry.compensating = true),
    }, (s) => { entry.state = s; })
      .catch(async (err) => {
        if (missingSetup(err) !== null || session.lost !== null) {
          // pg_durable (or the database) went away under the run: nothing to hand back.
          this.log.warn({ instance: claim.instanceId, err: (err as Error).message }, 'instance run stopped: pg_durable is gone');
          void this.checkLost(session);
          return;
        }
        if (err instanceof CheckpointLost) {
          // A held-back checkpoint did not commit (src/worker/steps.ts): resume from the last one now.
          this.log.warn({ instance: claim.instanceId, node: err.node, err: err.reason }, 'checkpoint lost; resuming the instance from its last checkpoint');
          await this.store.releaseLater(session.epoch, claim.instanceId, 0).catch(() => undefined);
          this.backlog = true; // released due now: claim it again
          return;
        }
        this.log.error({ instance: claim.instanceId, err: (err as Error).message }, 'instance run failed unexpectedly; retrying it in 5 s');
        // Hand the lease back (after a pause, so a persistent fault does not spin); if even that
        // fails, the heartbeat no longer renews it and another worker takes over at expiry.
        await this.store.releaseLater(session.epoch, claim.instanceId, 5).catch(() => undefined);
      })
      .finally(() => {
        started();
        this.active.delete(claim.instanceId);
        this.ahead.finished();
        if (this.backlog || this.ahead.size > 0) this.poke();
      });
    this.active.set(claim.instanceId, entry);
  }

  /** --metrics-port: /metrics and /healthz (src/worker/metrics.ts); a port that cannot be bound is logged, not fatal. */
  private async serveMetrics(): Promise<http.Server | null> {
    if (this.config.metricsPort === null) return null;
    try {
      return await serveMetrics({ host: this.config.metricsHost, port: this.config.metricsPort, heartbeatSeconds: this.config.heartbeatSeconds, log: this.log });
    } catch (err) {
      this.log.error({ err: (err as Error).message, port: this.config.metricsPort }, 'cannot serve metrics');
      return null;
    }
  }

  get activeCount(): number {
    return this.active.size;
  }

  /**
   * Graceful stop: stop claiming, let in-flight steps finish up to `graceSeconds`, hand leases
   * back, close every connection. While still waiting for the database or the extension, returns
   * at once. Idempotent: later calls return the same promise.
   */
  stop(graceSeconds = this.config.shutdownGraceSeconds): Promise<void> {
    if (!this.stopped) this.stopped = this.shutdown(graceSeconds);
    return this.stopped;
  }

  private async shutdown(graceSeconds: number): Promise<void> {
    this.stopping = true;
    this.graceSeconds = graceSeconds;
    this.halt.abort('shutdown');
    this.session?.end.abort('shutdown');
    this.poke();
    await this.main;
    this.markReady();
    await this.steps.end();
    await this.store.end();
    const server = await this.metricsServer; // metrics
    if (server) await new Promise((resolve) => server.close(resolve));
    this.log.info('worker stopped');
  }
}
