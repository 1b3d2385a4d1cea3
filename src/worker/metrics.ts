/**
 * Worker observability: Prometheus metrics (prom-client, a private Registry) and a health check,
 * served by `--metrics-port N` on `/metrics` and `/healthz`.
 *
 * One worker per process, so the metrics are a module singleton: the hooks in worker.ts, steps.ts,
 * interpreter.ts, http.ts and transient.ts call `metrics.*` (each call marked `// metrics`) without
 * threading an object through every constructor. Nothing here touches the database.
 *
 * /healthz is 200 while the worker's own last successful heartbeat (or epoch registration) is
 * fresh: within 3 x --heartbeat-seconds (15 s at the default 5 s). It is 503 while the worker waits
 * for its database or for CREATE EXTENSION pg_durable, and when heartbeats stop succeeding.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Logger } from './log';

const WAIT_TYPES = new Set(['SLEEP', 'WAIT_SCHEDULE', 'SIGNAL']);
const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

export class WorkerMetrics {
  readonly registry = new Registry();
  /** Instances with a SQL or HTTP step in flight, and how many such steps each has. */
  private readonly working = new Map<string, number>();
  private activeSource: () => number = () => 0;
  private lastBeat = 0;

  readonly steps = new Counter({
    name: 'pg_durable_worker_steps_total',
    help: 'Leaf steps run to an outcome (replayed steps are not counted), by node type and outcome (completed|failed)',
    labelNames: ['type', 'outcome'] as const,
    registers: [this.registry],
  });
  readonly retries = new Counter({
    name: 'pg_durable_worker_step_retries_total',
    help: 'Steps run again, by node type and reason: retry_node (a df.retry attempt failed), transient (connection loss, 40001, ...), http (5xx or transport error)',
    labelNames: ['type', 'reason'] as const,
    registers: [this.registry],
  });
  readonly stepSeconds = new Histogram({
    name: 'pg_durable_worker_step_duration_seconds',
    help: 'Wall time of a leaf step from start to outcome, by node type (waits included for SLEEP, WAIT_SCHEDULE and SIGNAL)',
    labelNames: ['type'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });
  readonly checkpointSeconds = new Histogram({
    name: 'pg_durable_worker_checkpoint_duration_seconds',
    help: "Durable writes through df._commit: kind=step (a SQL step's checkpoint and COMMIT, on its own connection; for a step of a chain, the one flight that also starts the next step) or write (other transitions)",
    labelNames: ['kind'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });
  readonly claimed = new Counter({
    name: 'pg_durable_worker_instances_claimed_total',
    help: 'Instances claimed from df._work',
    registers: [this.registry],
  });
  readonly claims = new Counter({
    name: 'pg_durable_worker_claims_total',
    help: 'Claims (round trips to df._work), empty ones included; instances_claimed_total / claims_total is how many instances a claim takes',
    registers: [this.registry],
  });
  readonly takeovers = new Counter({
    name: 'pg_durable_worker_lease_takeovers_total',
    help: 'Claims that resumed an instance with recorded progress: its previous lease expired (a crashed or stopped worker) or was handed back',
    registers: [this.registry],
  });
  readonly transient = new Counter({
    name: 'pg_durable_worker_transient_faults_total',
    help: 'Transient faults retried (connection loss, serialization failure, deadlock, shutdown, too many connections), by SQLSTATE or errno',
    labelNames: ['sqlstate'] as const,
    registers: [this.registry],
  });
  readonly egressBlocked = new Counter({
    name: 'pg_durable_worker_http_egress_blocked_total',
    help: 'df.http requests refused by the egress policy, by gate (privilege|scheme|allowlist|ip)',
    labelNames: ['gate'] as const,
    registers: [this.registry],
  });

  constructor() {
    const self = this;
    new Gauge({
      name: 'pg_durable_worker_instances_active',
      help: 'Instances held in memory by this worker (running or waiting)',
      registers: [this.registry],
      collect() {
        this.set(self.activeSource());
      },
    });
    new Gauge({
      name: 'pg_durable_worker_instances_running',
      help: 'Instances with a SQL or HTTP step in flight',
      registers: [this.registry],
      collect() {
        this.set(self.working.size);
      },
    });
    new Gauge({
      name: 'pg_durable_worker_instances_waiting',
      help: 'Instances held in memory with no SQL or HTTP step in flight (timers, signals, backoffs)',
      registers: [this.registry],
      collect() {
        this.set(Math.max(0, self.activeSource() - self.working.size));
      },
    });
    new Gauge({
      name: 'pg_durable_worker_heartbeat_age_seconds',
      help: "Seconds since this worker's last successful heartbeat (-1 while it waits for its database or pg_durable)",
      registers: [this.registry],
      collect() {
        this.set(self.lastBeat === 0 ? -1 : (Date.now() - self.lastBeat) / 1000);
      },
    });
    collectDefaultMetrics({ register: this.registry });
  }

  /** The worker's count of in-memory instances (set once by the Worker). */
  setActiveSource(source: () => number): void {
    this.activeSource = source;
  }

  /** A successful heartbeat or epoch registration. */
  beat(): void {
    this.lastBeat = Date.now();
  }

  /** The session ended: waiting for the database or the extension again. */
  idle(): void {
    this.lastBeat = 0;
  }

  /** Whether the last successful heartbeat is within `maxAgeMs`. */
  healthy(maxAgeMs: number): { ok: boolean; ageSeconds: number | null } {
    if (this.lastBeat === 0) return { ok: false, ageSeconds: null };
    const age = Date.now() - this.lastBeat;
    return { ok: age <= maxAgeMs, ageSeconds: age / 1000 };
  }

  /** Runs one leaf step, timing it and counting its outcome; aborted runs are not counted. */
  async step<T extends { kind: string }>(instanceId: string, type: string, run: () => Promise<T>): Promise<T> {
    const work = !WAIT_TYPES.has(type);
    if (work) this.working.set(instanceId, (this.working.get(instanceId) ?? 0) + 1);
    const end = this.stepSeconds.startTimer({ type });
    try {
      const out = await run();
      end();
      this.steps.inc({ type, outcome: out.kind === 'fail' ? 'failed' : 'completed' });
      return out;
    } finally {
      if (work) {
        const n = (this.working.get(instanceId) ?? 1) - 1;
        if (n <= 0) this.working.delete(instanceId);
        else this.working.set(instanceId, n);
      }
    }
  }

  /** Times a durable write. */
  async checkpoint<T>(kind: 'step' | 'write', run: () => Promise<T>): Promise<T> {
    const end = this.checkpointSeconds.startTimer({ kind });
    try {
      return await run();
    } finally {
      end();
    }
  }

  transientFault(err: unknown): void {
    const code = (err as { code?: unknown } | null)?.code;
    this.transient.inc({ sqlstate: typeof code === 'string' && /^[0-9A-Z]{5}$|^E[A-Z]+$/.test(code) ? code : 'none' });
  }
}

export const metrics = new WorkerMetrics();

/**
 * Serves /metrics and /healthz on host:port (port 0: any free port). Resolves with the listening
 * server, or rejects when the port cannot be bound.
 */
export function serveMetrics(opts: { host: string; port: number; heartbeatSeconds: number; log: Logger }): Promise<http.Server> {
  const maxAgeMs = 3 * opts.heartbeatSeconds * 1000;
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD' }).end();
      return;
    }
    if (path === '/metrics') {
      metrics.registry.metrics().then(
        (text) => res.writeHead(200, { 'Content-Type': metrics.registry.contentType }).end(req.method === 'HEAD' ? undefined : text),
        (err) => res.writeHead(500, { 'Content-Type': 'text/plain' }).end(`metrics failed: ${(err as Error).message}\n`),
      );
      return;
    }
    if (path === '/healthz') {
      const h = metrics.healthy(maxAgeMs);
      const body = JSON.stringify({
        status: h.ok ? 'ok' : h.ageSeconds === null ? 'waiting' : 'stale',
        heartbeat_age_seconds: h.ageSeconds,
        max_age_seconds: maxAgeMs / 1000,
      });
      res.writeHead(h.ok ? 200 : 503, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' }).end(req.method === 'HEAD' ? undefined : `${body}\n`);
      return;
    }
    res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found: try /metrics or /healthz\n');
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      const addr = server.address() as AddressInfo;
      opts.log.info({ host: addr.address, port: addr.port }, `metrics on http://${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}/metrics and /healthz`);
      resolve(server);
    });
  });
}
