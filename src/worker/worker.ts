/**
 * The worker process: claims due instances (FOR UPDATE SKIP LOCKED + lease), runs them
 * concurrently, heartbeats (df._worker_epoch + lease renewal), wakes on NOTIFY pg_durable with
 * polling as a fallback, survives PostgreSQL restarts by reconnecting with backoff, and shuts down
 * gracefully: stop claiming, let in-flight steps finish up to a deadline, hand leases back.
 */
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { systemClock, type Clock } from './clock';
import { databaseOf, type WorkerConfig } from './config';
import { defaultEgressPolicy } from './http';
import { runInstance } from './instance';
import type { Deps, InstanceState } from './interpreter';
import type { Logger } from './log';
import { SignalHub } from './signals';
import { StepRunner } from './steps';
import { Store } from './store';
import { backoffMs, sleep } from './transient';

/** Claims per round trip; a full batch means "look again at once". */
const CLAIM_BATCH = 50;

interface Active {
  controller: AbortController;
  done: Promise<void>;
  state: InstanceState | null;
}

export class Worker {
  readonly epoch = randomUUID();
  private readonly store: Store;
  private readonly steps: StepRunner;
  private readonly hub = new SignalHub();
  private readonly active = new Map<string, Active>();
  private readonly deps: Deps;
  private listener: pg.Client | null = null;
  private stopping = false;
  private wake: (() => void) | null = null;
  private heartbeatTimer: NodeJS.Timeout | null = null;
  private loop: Promise<void> | null = null;
  private superuserCache: { at: number; value: boolean } | null = null;
  private readonly drain = new AbortController();

  constructor(
    private readonly config: WorkerConfig,
    private readonly log: Logger,
    clock: Clock = systemClock(config.clockSpeed),
    version = '0.0.0',
  ) {
    this.store = new Store(config.databaseUrl, 10, () => this.stopping);
    this.steps = new StepRunner(config, this.store, log);
    const egress = {
      ...defaultEgressPolicy(version),
      allowLoopback: config.httpAllowLoopback,
      allowPrivate: config.httpAllowPrivate,
      allowedHosts: config.httpAllowedHosts,
      maxRetries: config.httpMaxRetries,
      maxResponseBytes: config.maxResultBytes,
    };
    this.deps = { store: this.store, steps: this.steps, clock, log, hub: this.hub, egress, drain: this.drain.signal, maxResultBytes: config.maxResultBytes };
  }

  async start(): Promise<void> {
    await this.store.registerEpoch(this.epoch);
    await this.steps.loadTypeNames();
    await this.listen();
    this.heartbeatTimer = setInterval(() => void this.heartbeat(), this.config.heartbeatSeconds * 1000);
    this.loop = this.claimLoop();
    this.log.info({ epoch: this.epoch, database: databaseOf(this.config.databaseUrl), concurrency: this.config.maxStepConnections }, 'worker started');
  }

  private async listen(): Promise<void> {
    for (let attempt = 0; !this.stopping; attempt++) {
      const client = new pg.Client({ connectionString: this.config.databaseUrl, application_name: 'pg_durable:worker:poll' });
      try {
        await client.connect();
        await client.query('LISTEN pg_durable');
      } catch (err) {
        await client.end().catch(() => undefined);
        this.log.warn({ err: (err as Error).message, attempt: attempt + 1 }, 'cannot LISTEN yet, retrying');
        await sleep(backoffMs(attempt));
        continue;
      }
      client.on('notification', (n) => this.onNotification(n.payload ?? ''));
      client.on('error', (err) => {
        this.log.warn({ err: err.message }, 'notification connection lost; reconnecting');
        this.listener = null;
        client.end().catch(() => undefined);
        if (!this.stopping) void this.listen();
      });
      this.listener = client;
      this.poke(); // anything that happened while we were not listening
      return;
    }
  }

  private onNotification(payload: string): void {
    const [kind, id] = payload.split(':');
    if (kind === 'cancel') {
      const a = this.active.get(id);
      if (a) {
        this.log.info({ instance: id }, 'cancel requested: stopping in-flight work');
        a.controller.abort('cancelled');
      }
      return;
    }
    if (kind === 'signal') this.hub.notify(id);
    this.poke();
  }

  private poke(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  private async heartbeat(): Promise<void> {
    try {
      await this.store.heartbeat(this.epoch, this.config.leaseSeconds, [...this.active.keys()]);
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'heartbeat failed');
    }
  }

  private async superuserAllowed(): Promise<boolean> {
    const now = Date.now();
    if (!this.superuserCache || now - this.superuserCache.at > 5000) {
      this.superuserCache = { at: now, value: await this.store.superuserInstancesEnabled() };
    }
    return this.superuserCache.value;
  }

  private async claimLoop(): Promise<void> {
    let failures = 0;
    while (!this.stopping) {
      let claimed = 0;
      // Claim no more than we can start executing now (free step slots), so several workers share
      // a backlog instead of the first one hoarding it; waiting instances hold no slot.
      const room = Math.min(this.config.maxInstances - this.active.size, Math.max(1, this.config.maxStepConnections - this.steps.busy));
      if (room > 0) {
        try {
          const claims = await this.store.claim(this.epoch, Math.min(CLAIM_BATCH, room), this.config.leaseSeconds);
          claimed = claims.length;
          failures = 0;
          for (const c of claims) this.dispatch(c);
        } catch (err) {
          failures++;
          this.log.warn({ err: (err as Error).message }, 'claim failed; backing off');
          await sleep(backoffMs(failures));
          continue;
        }
      }
      if (claimed === CLAIM_BATCH && !this.stopping) continue;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, this.config.pollIntervalMs);
        this.wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
  }

  private dispatch(claim: Awaited<ReturnType<Store['claim']>>[number]): void {
    const running = this.active.get(claim.instanceId);
    if (running) {
      // Our own lease expired and we re-claimed: keep running with the new token.
      if (running.state) running.state.token = claim.token;
      return;
    }
    const controller = new AbortController();
    const entry: Active = { controller, done: Promise.resolve(), state: null };
    entry.done = runInstance(this.deps, claim, controller.signal, {
      defaultDatabase: databaseOf(this.config.databaseUrl),
      superuserAllowed: () => this.superuserAllowed(),
    }, (s) => { entry.state = s; })
      .catch(async (err) => {
        this.log.error({ instance: claim.instanceId, err: (err as Error).message }, 'instance run failed unexpectedly; retrying it in 5 s');
        // Hand the lease back (after a pause, so a persistent fault does not spin); if even that
        // fails, the heartbeat no longer renews it and another worker takes over at expiry.
        await this.store.releaseLater(this.epoch, claim.instanceId, 5).catch(() => undefined);
      })
      .finally(() => {
        this.active.delete(claim.instanceId);
        this.poke();
      });
    this.active.set(claim.instanceId, entry);
  }

  get activeCount(): number {
    return this.active.size;
  }

  async stop(graceSeconds = this.config.shutdownGraceSeconds): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.poke();
    await this.loop;
    const inFlight = [...this.active.values()].map((a) => a.done);
    this.log.info({ inFlight: inFlight.length, graceSeconds }, 'shutting down: waiting for in-flight steps');
    // Waits (timers, signals) stop at once; SQL steps in flight get the grace period, then are cancelled.
    this.drain.abort('shutdown');
    let graceTimer: NodeJS.Timeout | undefined;
    const deadline = new Promise<'timeout'>((resolve) => {
      graceTimer = setTimeout(() => resolve('timeout'), graceSeconds * 1000);
    });
    const result = await Promise.race([Promise.all(inFlight).then(() => 'done' as const), deadline]);
    clearTimeout(graceTimer);
    if (result === 'timeout') {
      for (const a of this.active.values()) a.controller.abort('shutdown');
      await Promise.all([...this.active.values()].map((a) => a.done));
    }
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    await this.store.release(this.epoch).catch(() => undefined);
    await this.store.dropEpoch(this.epoch);
    await this.listener?.end().catch(() => undefined);
    await this.steps.end();
    await this.store.end();
    this.log.info('worker stopped');
  }
}
