/**
 * The embedded default: a throwaway PostgreSQL cluster in a temp directory, built from the local
 * server binaries, listening only on a private Unix socket, with pg_durable installable through
 * `extension_destdir` (a Debian/PostgreSQL setting that looks for extensions under a prefix first),
 * so nothing is written to the system's share directory.
 *
 * Which pg_durable gets installed: the real plv8 extension when the server has plv8, otherwise the
 * plv8 host variant (dist/host-ext, needs PL/Python 3). `cluster.flavor` says which.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';

export type Flavor = 'plv8' | 'plv8-host';

export interface ClusterOptions {
  /** Extra postgresql.conf lines, e.g. { synchronous_commit: 'on' }. */
  settings?: Record<string, string | number>;
  /** Force a flavor instead of auto-detecting plv8. */
  flavor?: Flavor;
  log?: (line: string) => void;
  /**
   * Clean up if this process ends before stop() runs: 'exit' stops the server (`pg_ctl stop -m
   * immediate`) and removes its directory from a process 'exit' handler (normal end, process.exit,
   * an uncaught exception); 'signals' also does it on SIGINT/SIGTERM, then exits with 130/143
   * (the demo). Default: neither.
   */
  cleanup?: 'exit' | 'signals';
}

export interface Cluster {
  dir: string;
  socketDir: string;
  port: number;
  flavor: Flavor;
  bindir: string;
  /** libpq-style connection string for `database` as `user` (default: the superuser). */
  url(database?: string, user?: string): string;
  /** A database with CREATE EXTENSION pg_durable done (created on first use). */
  createDatabase(name: string): Promise<void>;
  restart(mode?: 'fast' | 'immediate'): void;
  /** Immediate stop and removal of the directory; idempotent. */
  stop(): void;
}

/**
 * Runs `cleanup` once when this process ends: from an 'exit' handler (so it must be synchronous)
 * and, with `signals`, on SIGINT/SIGTERM, after which the process exits with 130/143 as if killed
 * by the signal. Returns a function that unregisters it (call it once cleaned up another way).
 */
export function cleanupOnExit(cleanup: () => void, opts: { signals?: boolean } = {}): () => void {
  let done = false;
  const run = () => {
    if (done) return;
    done = true;
    try {
      cleanup();
    } catch {
      // best effort: the process is ending
    }
  };
  const onSignal = (signal: NodeJS.Signals) => {
    run();
    process.exit(signal === 'SIGINT' ? 130 : 143);
  };
  process.once('exit', run);
  if (opts.signals) {
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  }
  return () => {
    done = true;
    process.off('exit', run);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  };
}

const ROOT = packageRoot();

/** The package root, from src/embedded (tsx, vitest) or dist/ (bundled CLI) alike. */
export function packageRoot(): string {
  let dir = fileURLToPath(new URL('.', import.meta.url));
  for (let i = 0; i < 5; i++) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && /"name":\s*"pg-durable"/.test(readFileSync(pkg, 'utf8'))) return dir;
    dir = resolve(dir, '..');
  }
  throw new Error('pg_durable: cannot find the package root');
}

export const SUPERUSER = 'postgres';

function pgConfig(flag: string): string {
  return execFileSync(process.env.PG_CONFIG ?? 'pg_config', [flag], { encoding: 'utf8' }).trim();
}

/** Runs a server binary as the unprivileged `postgres` OS user when we are root (initdb refuses root). */
function runAsOwner(bin: string, args: string[], owned: boolean): ReturnType<typeof spawnSync> {
  const cmd = owned ? 'runuser' : bin;
  const argv = owned ? ['-u', 'postgres', '--', bin, ...args] : args;
  return spawnSync(cmd, argv, { encoding: 'utf8' });
}

function check(res: ReturnType<typeof spawnSync>, what: string): void {
  if (res.status !== 0) {
    throw new Error(`${what} failed (exit ${res.status}): ${String(res.stderr || res.stdout || res.error)}`.trim());
  }
}

function chownTree(path: string, uid: number, gid: number): void {
  chownSync(path, uid, gid);
  for (const entry of readdirSync(path, { withFileTypes: true })) {
    const p = join(path, entry.name);
    if (entry.isDirectory()) chownTree(p, uid, gid);
    else chownSync(p, uid, gid);
  }
}

function ownerIds(): { uid: number; gid: number } {
  const out = execFileSync('id', ['postgres'], { encoding: 'utf8' });
  const uid = Number(/uid=(\d+)/.exec(out)?.[1]);
  const gid = Number(/gid=(\d+)/.exec(out)?.[1]);
  return { uid, gid };
}

function serverHasPlv8(): boolean {
  return existsSync(join(pgConfig('--sharedir'), 'extension', 'plv8.control'));
}

/**
 * PG_DURABLE_FLAVOR forces a flavor (`plv8` or `host`), so a machine with plv8 can run the suite
 * both ways; unset, plv8 is used where the server has it.
 */
export function chooseFlavor(forced?: Flavor): Flavor {
  const env = (process.env.PG_DURABLE_FLAVOR ?? '').trim().toLowerCase();
  const wanted: Flavor | undefined = forced ?? (env === '' ? undefined : env === 'plv8' ? 'plv8' : env === 'host' || env === 'plv8-host' ? 'plv8-host' : undefined);
  if (env !== '' && wanted === undefined) throw new Error(`PG_DURABLE_FLAVOR=${env}: expected 'plv8' or 'host'`);
  if (wanted === 'plv8' && !serverHasPlv8()) {
    throw new Error('PG_DURABLE_FLAVOR=plv8 but this server has no plv8 (install plv8 into it, or use PG_DURABLE_FLAVOR=host)');
  }
  return wanted ?? (serverHasPlv8() ? 'plv8' : 'plv8-host');
}

/**
 * Compiles the host's error raiser (src/host/raise.c, shipped as dist/host-ext/raise.c) into `dir`.
 * It needs a C compiler and PostgreSQL's server headers (Debian: postgresql-server-dev-15); without
 * them the host still works, but errors carry the host wrapper's context instead of plv8's.
 */
function compileHostRaise(hostExt: string, dir: string, log: (line: string) => void): string | null {
  const out = join(dir, 'pgd_host_raise.so');
  let include: string;
  try {
    include = pgConfig('--includedir-server');
  } catch {
    include = '';
  }
  const cc = spawnSync(process.env.CC ?? 'cc', ['-O2', '-fPIC', '-shared', `-I${include}`, join(hostExt, 'raise.c'), '-o', out], { encoding: 'utf8' });
  if (cc.status === 0) return out;
  log(
    'pg_durable plv8 host: could not compile raise.c (needs cc and PostgreSQL server headers: apt-get install postgresql-server-dev-15); ' +
      `errors will not carry plv8's CONTEXT line. ${String(cc.stderr || cc.error || '').split('\n')[0]}`,
  );
  return null;
}

/** Without the compiled raiser: a PL/pgSQL stand-in (same message and SQLSTATE, no CONTEXT). */
const RAISE_FALLBACK =
  'CREATE OR REPLACE FUNCTION df._host_raise(m text, c text, d text, h text, x text) RETURNS text LANGUAGE plpgsql AS ' +
  "$f$ BEGIN RAISE EXCEPTION USING MESSAGE = m, ERRCODE = c, DETAIL = COALESCE(d, ''), HINT = COALESCE(h, ''); END $f$;";

/** Copies the plv8-host variant, pointing its PL/Python bridge at this installation's files. */
function installHostExtension(hostExt: string, extDir: string, raiseSo: string | null): void {
  const raiseC = /^CREATE OR REPLACE FUNCTION df\._host_raise\(.*LANGUAGE c AS '@HOST_RAISE@'.*$/m;
  for (const name of readdirSync(hostExt)) {
    let text = readFileSync(join(hostExt, name), 'utf8');
    if (name.endsWith('.sql')) {
      text = text
        .split('@NODE@').join(process.execPath)
        .split('@HOST_JS@').join(join(ROOT, 'dist/plv8-host.cjs'))
        .split('@HOST_EXT@').join(hostExt);
      text = raiseSo === null ? text.replace(raiseC, () => RAISE_FALLBACK) : text.split('@HOST_RAISE@').join(raiseSo);
    }
    writeFileSync(join(extDir, name), text);
  }
}

export async function startCluster(options: ClusterOptions = {}): Promise<Cluster> {
  const bindir = process.env.PG_BINDIR ?? pgConfig('--bindir');
  const sharedir = pgConfig('--sharedir');
  const asRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  const flavor: Flavor = chooseFlavor(options.flavor);
  const hostExt = join(ROOT, 'dist/host-ext');
  if (flavor === 'plv8-host' && !existsSync(join(hostExt, 'pg_durable.control'))) {
    throw new Error('dist/host-ext is missing: run `npm run build` first');
  }

  const dir = mkdtempSync(join(tmpdir(), 'pg-durable-'));
  chmodSync(dir, 0o755);
  const data = join(dir, 'data');
  const pgCtl = (args: string[]) => runAsOwner(join(bindir, 'pg_ctl'), ['-D', data, ...args], asRoot);
  let stopped = false;
  const stop = () => {
    if (stopped) return;
    stopped = true;
    unregister();
    if (existsSync(join(data, 'postmaster.pid'))) pgCtl(['-w', '-m', 'immediate', 'stop']);
    rmSync(dir, { recursive: true, force: true });
  };
  const unregister = options.cleanup ? cleanupOnExit(stop, { signals: options.cleanup === 'signals' }) : () => undefined;
  const socketDir = join(dir, 'sock');
  const destdir = join(dir, 'ext');
  const extDir = join(destdir, sharedir, 'extension');
  mkdirSync(socketDir);
  mkdirSync(extDir, { recursive: true });
  if (flavor === 'plv8') cpSync(join(ROOT, 'extension'), extDir, { recursive: true });
  else installHostExtension(hostExt, extDir, compileHostRaise(hostExt, dir, options.log ?? ((line) => console.warn(line))));
  if (asRoot) {
    const { uid, gid } = ownerIds();
    chownTree(dir, uid, gid);
  }

  check(runAsOwner(join(bindir, 'initdb'), ['-D', data, '-U', SUPERUSER, '-A', 'trust', '--no-sync', '-E', 'UTF8', '--locale=C'], asRoot), 'initdb');
  const port = 20000 + Math.floor(Math.random() * 30000);
  const settings: Record<string, string | number> = {
    listen_addresses: "''",
    unix_socket_directories: `'${socketDir}'`,
    port,
    extension_destdir: `'${destdir}'`,
    max_connections: 300,
    fsync: 'off',
    synchronous_commit: 'off',
    full_page_writes: 'off',
    shared_buffers: '128MB',
    log_min_messages: 'warning',
    'pg_durable.enable_superuser_instances': 'off',
    ...options.settings,
  };
  const conf = Object.entries(settings).map(([k, v]) => `${k} = ${v}`).join('\n');
  writeFileSync(join(data, 'postgresql.auto.conf'), `${conf}\n`, { flag: 'a' });
  if (asRoot) {
    const { uid, gid } = ownerIds();
    chownSync(join(data, 'postgresql.auto.conf'), uid, gid);
  }

  const logFile = join(dir, 'server.log');
  const start = () => check(pgCtl(['-w', '-t', '60', '-l', logFile, 'start']), `starting PostgreSQL (see ${logFile})`);
  start();

  const url = (database = 'postgres', user = SUPERUSER) =>
    `postgresql://${encodeURIComponent(user)}@/${encodeURIComponent(database)}?host=${encodeURIComponent(socketDir)}&port=${port}`;

  const cluster: Cluster = {
    dir, socketDir, port, flavor, bindir, url,
    async createDatabase(name) {
      const admin = new pg.Client({ connectionString: url('postgres') });
      await admin.connect();
      try {
        await admin.query(`CREATE DATABASE ${pg.escapeIdentifier(name)}`);
      } finally {
        await admin.end();
      }
      const db = new pg.Client({ connectionString: url(name) });
      await db.connect();
      try {
        await db.query('CREATE EXTENSION pg_durable CASCADE');
      } finally {
        await db.end();
      }
    },
    restart(mode = 'fast') {
      check(pgCtl(['-w', '-m', mode, 'stop']), 'stopping PostgreSQL');
      start();
    },
    stop,
  };
  return cluster;
}
