/** `pg-durable worker`: run the durable worker until SIGTERM/SIGINT. */
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
  await worker.start();
  await new Promise<void>((resolve) => {
    const stop = (sig: string) => {
      log.info({ signal: sig }, 'stopping');
      worker.stop().then(resolve, resolve);
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  return 0;
}
