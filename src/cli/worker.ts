/**
 * `pg-durable worker`: run the durable worker until SIGTERM/SIGINT (exit 0). With
 * PG_DURABLE_EXIT_ON_STDIN_CLOSE=1 it also stops when its stdin reaches end of file: test harnesses
 * give it a pipe, so the worker dies with the process that started it.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../embedded/cluster';
import { ConfigError, parseConfig, WORKER_HELP } from '../worker/config';
import { createLogger } from '../worker/log';
import { Worker } from '../worker/worker';

export function packageVersion(): string {
  try {
    return (JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return '0.0.0';
  }
}

export async function run(args: string[]): Promise<number> {
  if (args.includes('--help') || args.includes('-h')) {
    console.log(WORKER_HELP);
    return 0;
  }
  let config;
  try {
    config = parseConfig(args);
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`pg-durable worker: ${err.message}\nRun 'pg-durable worker --help' for the options.`);
      return 2;
    }
    throw err;
  }
  const log = createLogger(config.logLevel);
  const worker = new Worker(config, log, undefined, packageVersion());
  // Signals are handled from the start: the worker may wait a long time for its database or for
  // CREATE EXTENSION pg_durable, and a SIGTERM then must end it at once (exit 0).
  const exitWithStdin = /^(1|true|yes|on)$/i.test(process.env.PG_DURABLE_EXIT_ON_STDIN_CLOSE ?? '');
  const stopped = new Promise<void>((resolve) => {
    let stopping = false;
    const stop = (why: string) => {
      if (stopping) return;
      stopping = true;
      log.info({ signal: why }, 'stopping');
      if (exitWithStdin) {
        process.stdin.destroy(); // an open pipe would keep the process alive after the stop
        // Whoever started us is gone: do not linger if the stop itself hangs.
        if (why === 'stdin closed') setTimeout(() => process.exit(0), (config.shutdownGraceSeconds + 15) * 1000).unref();
      }
      worker.stop().then(resolve, resolve);
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
    if (exitWithStdin) {
      // Opt-in (the test helpers set it): stdin is a pipe from the parent, and its end means the
      // parent died, even by SIGKILL, so the worker does not outlive it.
      process.stdin.on('end', () => stop('stdin closed'));
      process.stdin.on('close', () => stop('stdin closed'));
      process.stdin.on('error', () => stop('stdin closed'));
      process.stdin.resume();
    }
  });
  await worker.start(); // resolves once working, or when stopped while still waiting
  await stopped;
  return 0;
}
