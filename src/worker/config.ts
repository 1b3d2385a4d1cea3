/**
 * Worker configuration: command-line flags override environment variables override defaults.
 * Every value is validated at start so a typo fails fast with a message that names the setting.
 */
import { parseArgs } from 'node:util';
import type pg from 'pg';
import { parse as parseConnectionString } from 'pg-connection-string';
import { DEFAULT_MAX_RESULT_BYTES } from '../core/limits';

export interface WorkerConfig {
  /** The worker's own connection (a superuser: it reads every tenant's queue rows). */
  databaseUrl: string;
  /** Step connections: a URL template with {role} and {database}, or null = databaseUrl with those replaced. */
  stepUrlTemplate: string | null;
  /** Concurrent SQL-step connections per worker; more steps queue. */
  maxStepConnections: number;
  /** How long a step may wait for a step connection before its node fails. */
  acquireTimeoutSeconds: number;
  /** Fallback polling when no NOTIFY arrives (timers, missed notifications). */
  pollIntervalMs: number;
  /** Lease on a claimed instance; renewed every heartbeat; another worker takes over after expiry. */
  leaseSeconds: number;
  heartbeatSeconds: number;
  /** Instances held in memory at once (running or waiting on timers/signals). */
  maxInstances: number;
  /** On SIGTERM/SIGINT: how long in-flight steps may run before they are cancelled. */
  shutdownGraceSeconds: number;
  httpAllowLoopback: boolean;
  httpAllowPrivate: boolean;
  /** Let df.http URLs name a literal IP address (the original refuses them); range checks still apply. */
  httpAllowIpLiterals: boolean;
  httpAllowedHosts: string[] | null;
  httpMaxRetries: number;
  /** Largest step result (SQL rows as JSON, HTTP response body) in bytes; a bigger one fails its node. */
  maxResultBytes: number;
  logLevel: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'silent';
  /** Test hook: timers run this many times faster (1 = real time). Environment only. */
  clockSpeed: number;
  /** --metrics-port: serve /metrics and /healthz on this port (0: any free port), null = off. */
  metricsPort: number | null;
  /** --metrics-host: the address the metrics server binds. */
  metricsHost: string;
}

export class ConfigError extends Error {}

export const WORKER_HELP = `usage: pg-durable worker [options]

Runs durable workflows stored in a database with the pg_durable extension.

options (environment variable in brackets):
  --database-url URL        worker connection, a superuser      [PG_DURABLE_DATABASE_URL, DATABASE_URL]
  --step-url TEMPLATE       step connections, {role} {database} [PG_DURABLE_STEP_URL]
                            default: the database URL with user={role}, no password, db={database}
  --concurrency N           concurrent SQL-step connections (10)          [PG_DURABLE_CONCURRENCY]
  --acquire-timeout SEC     wait for a step connection before failing (30) [PG_DURABLE_ACQUIRE_TIMEOUT]
  --poll-interval MS        fallback poll interval (1000)                  [PG_DURABLE_POLL_INTERVAL]
  --lease-seconds SEC       instance lease, renewed by heartbeats (30)     [PG_DURABLE_LEASE_SECONDS]
  --heartbeat-seconds SEC   heartbeat period (5)                           [PG_DURABLE_HEARTBEAT_SECONDS]
  --max-instances N         instances held in memory (1000)                [PG_DURABLE_MAX_INSTANCES]
  --shutdown-grace SEC      graceful shutdown deadline (30)                [PG_DURABLE_SHUTDOWN_GRACE]
  --http-allow-loopback     let df.http reach 127.0.0.0/8 and ::1 (tests) [PG_DURABLE_HTTP_ALLOW_LOOPBACK=1]
  --http-allow-private      let df.http reach private ranges              [PG_DURABLE_HTTP_ALLOW_PRIVATE=1]
  --http-allow-ip-literals  let df.http URLs name an IP address (ranges still checked) [PG_DURABLE_HTTP_ALLOW_IP_LITERALS=1]
  --http-allowed-hosts LIST comma-separated host suffixes df.http may reach [PG_DURABLE_HTTP_ALLOWED_HOSTS]
  --http-max-retries N      retries of 5xx / transport errors (2)          [PG_DURABLE_HTTP_MAX_RETRIES]
  --max-result-bytes N      largest step result, SQL or HTTP (16777216)   [PG_DURABLE_MAX_RESULT_BYTES]
  --log-level LEVEL         trace|debug|info|warn|error|silent (info)      [PG_DURABLE_LOG_LEVEL]
  --metrics-port N          serve /metrics (Prometheus) and /healthz (off) [PG_DURABLE_METRICS_PORT]
  --metrics-host ADDR       address the metrics server binds (127.0.0.1)   [PG_DURABLE_METRICS_HOST]
`;

function int(name: string, raw: string | undefined, def: number, min: number, max: number): number {
  if (raw === undefined || raw === '') return def;
  if (!/^-?\d+$/.test(raw.trim())) throw new ConfigError(`${name} must be a whole number, got '${raw}'`);
  const v = Number(raw);
  if (v < min || v > max) throw new ConfigError(`${name} must be between ${min} and ${max}, got ${v}`);
  return v;
}

function bool(raw: string | boolean | undefined): boolean {
  if (typeof raw === 'boolean') return raw;
  return raw !== undefined && /^(1|true|yes|on)$/i.test(raw.trim());
}

export function parseConfig(argv: string[], env: NodeJS.ProcessEnv = process.env): WorkerConfig {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      options: {
        'database-url': { type: 'string' },
        'step-url': { type: 'string' },
        concurrency: { type: 'string' },
        'acquire-timeout': { type: 'string' },
        'poll-interval': { type: 'string' },
        'lease-seconds': { type: 'string' },
        'heartbeat-seconds': { type: 'string' },
        'max-instances': { type: 'string' },
        'shutdown-grace': { type: 'string' },
        'http-allow-loopback': { type: 'boolean' },
        'http-allow-private': { type: 'boolean' },
        'http-allow-ip-literals': { type: 'boolean' },
        'http-allowed-hosts': { type: 'string' },
        'http-max-retries': { type: 'string' },
        'max-result-bytes': { type: 'string' },
        'log-level': { type: 'string' },
        'metrics-port': { type: 'string' },
        'metrics-host': { type: 'string' },
      },
    }));
  } catch (err) {
    throw new ConfigError((err as Error).message);
  }
  const s = (flag: string, ...vars: string[]): string | undefined => {
    const v = values[flag];
    if (typeof v === 'string') return v;
    for (const name of vars) if (env[name] !== undefined && env[name] !== '') return env[name];
    return undefined;
  };
  const databaseUrl = s('database-url', 'PG_DURABLE_DATABASE_URL', 'DATABASE_URL');
  if (!databaseUrl) throw new ConfigError('no database: pass --database-url or set PG_DURABLE_DATABASE_URL (or DATABASE_URL)');
  const stepUrlTemplate = s('step-url', 'PG_DURABLE_STEP_URL') ?? null;
  if (stepUrlTemplate !== null && !stepUrlTemplate.includes('{role}')) {
    throw new ConfigError("--step-url must contain {role}: steps connect as the role that started the workflow");
  }
  const leaseSeconds = int('--lease-seconds', s('lease-seconds', 'PG_DURABLE_LEASE_SECONDS'), 30, 2, 3600);
  const heartbeatSeconds = int('--heartbeat-seconds', s('heartbeat-seconds', 'PG_DURABLE_HEARTBEAT_SECONDS'), 5, 1, 3600);
  if (heartbeatSeconds * 2 > leaseSeconds) {
    throw new ConfigError(`--heartbeat-seconds (${heartbeatSeconds}) must be at most half of --lease-seconds (${leaseSeconds}) so leases are renewed in time`);
  }
  const level = (s('log-level', 'PG_DURABLE_LOG_LEVEL') ?? 'info').toLowerCase();
  if (!['trace', 'debug', 'info', 'warn', 'error', 'silent'].includes(level)) {
    throw new ConfigError(`--log-level must be one of trace, debug, info, warn, error, silent; got '${level}'`);
  }
  const hosts = s('http-allowed-hosts', 'PG_DURABLE_HTTP_ALLOWED_HOSTS');
  const metricsPort = s('metrics-port', 'PG_DURABLE_METRICS_PORT');
  const speed = Number(env.PG_DURABLE_TEST_CLOCK_SPEED ?? '1');
  if (!(speed >= 1 && speed <= 3600)) throw new ConfigError('PG_DURABLE_TEST_CLOCK_SPEED must be between 1 and 3600');
  return {
    databaseUrl,
    stepUrlTemplate,
    maxStepConnections: int('--concurrency', s('concurrency', 'PG_DURABLE_CONCURRENCY'), 10, 1, 1000),
    acquireTimeoutSeconds: int('--acquire-timeout', s('acquire-timeout', 'PG_DURABLE_ACQUIRE_TIMEOUT'), 30, 1, 3600),
    pollIntervalMs: int('--poll-interval', s('poll-interval', 'PG_DURABLE_POLL_INTERVAL'), 1000, 10, 600000),
    leaseSeconds,
    heartbeatSeconds,
    maxInstances: int('--max-instances', s('max-instances', 'PG_DURABLE_MAX_INSTANCES'), 1000, 1, 1000000),
    shutdownGraceSeconds: int('--shutdown-grace', s('shutdown-grace', 'PG_DURABLE_SHUTDOWN_GRACE'), 30, 0, 3600),
    httpAllowLoopback: bool(values['http-allow-loopback'] ?? env.PG_DURABLE_HTTP_ALLOW_LOOPBACK),
    httpAllowPrivate: bool(values['http-allow-private'] ?? env.PG_DURABLE_HTTP_ALLOW_PRIVATE),
    httpAllowIpLiterals: bool(values['http-allow-ip-literals'] ?? env.PG_DURABLE_HTTP_ALLOW_IP_LITERALS),
    httpAllowedHosts: hosts ? hosts.split(',').map((h) => h.trim().toLowerCase()).filter(Boolean) : null,
    httpMaxRetries: int('--http-max-retries', s('http-max-retries', 'PG_DURABLE_HTTP_MAX_RETRIES'), 2, 0, 20),
    // At most 256 MiB: a result travels as one jsonb value (limit ~255 MB) and one JS string.
    maxResultBytes: int('--max-result-bytes', s('max-result-bytes', 'PG_DURABLE_MAX_RESULT_BYTES'), DEFAULT_MAX_RESULT_BYTES, 1024, 256 * 1024 * 1024),
    logLevel: level as WorkerConfig['logLevel'],
    clockSpeed: speed,
    metricsPort: metricsPort === undefined || metricsPort === '' ? null : int('--metrics-port', metricsPort, 0, 0, 65535),
    metricsHost: s('metrics-host', 'PG_DURABLE_METRICS_HOST') ?? '127.0.0.1',
  };
}

/**
 * Connection settings for a step: the template with {role} and {database} filled in, or the worker's
 * own settings with the user swapped for the role (no password: the server must let the worker
 * authenticate as submitting roles, e.g. trust/peer on a local socket) and the database swapped.
 */
export function stepConnection(config: WorkerConfig, role: string, database: string): pg.ClientConfig {
  if (config.stepUrlTemplate) {
    const url = config.stepUrlTemplate.split('{role}').join(encodeURIComponent(role)).split('{database}').join(encodeURIComponent(database));
    return { connectionString: url };
  }
  const base = parseConnectionString(config.databaseUrl);
  return {
    host: base.host ?? undefined,
    port: base.port ? Number(base.port) : undefined,
    ssl: base.ssl as pg.ClientConfig['ssl'],
    user: role,
    database,
  };
}

/** The database name the worker connection string points at (libpq rules: default = user name). */
export function databaseOf(url: string): string {
  const c = parseConnectionString(url);
  return c.database || process.env.PGDATABASE || c.user || process.env.PGUSER || process.env.USER || 'postgres';
}
