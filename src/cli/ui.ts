/** `pg-durable ui`: the web dashboard (src/ui/server.ts) until SIGINT/SIGTERM. */
import { startUiServer } from '../ui/server';
import { describeTarget } from '../ui/security';
import { CONNECTION_HELP, UsageError, command } from './monitor-util';

const HELP = `usage: pg-durable ui [--database-url URL] [--port N] [--host ADDR] [--read-only] [--allowed-host LIST]

Serves a web dashboard: the instance list (filters, paging, counts, live), and each instance's
graph coloured by live status, a timeline of node runs, nodes, executions and signals, with
cancel and signal actions (as the connecting role; --read-only disables them).
  --port N             port to listen on (default 8787; 0 = any free port)
  --host ADDR          address to bind (default 127.0.0.1: this machine only)
  --read-only          no actions: cancel and signal are refused and hidden
  --allowed-host LIST  also answer to these Host names, comma-separated (e.g. your proxy's public
                       name, with or without :port); the loopback names are always allowed

Everything is read and done as the database role: row-level security shows each role only its
own instances. Run one dashboard per role (or a read-only role) behind your own authenticating
proxy; docs/SECURITY.md has the details. Prefer DATABASE_URL or PGPASSWORD over a password in
--database-url (command lines are visible to other local users).

${CONNECTION_HELP}`;

export function run(args: string[]): Promise<number> {
  return command('ui', HELP, args, { values: ['port', 'host', 'allowed-host'], flags: ['read-only'] }, async ({ positional, options, flags }) => {
    if (positional.length > 0) throw new UsageError(`unexpected argument '${positional[0]}'`);
    const portText = options.port ?? '8787';
    const port = Number(portText);
    if (!/^[0-9]+$/.test(portText) || port > 65535) throw new UsageError(`--port must be 0..65535, got '${portText}'`);
    const databaseUrl = options['database-url'] ?? process.env.DATABASE_URL;
    const ui = await startUiServer({
      databaseUrl,
      host: options.host ?? '127.0.0.1',
      port,
      readOnly: flags.has('read-only'),
      allowedHosts: (options['allowed-host'] ?? '').split(',').map((h) => h.trim()).filter(Boolean),
    });
    console.log(`pg-durable ui: ${ui.url} (role ${ui.role}, database ${ui.database} at ${describeTarget(databaseUrl)}${flags.has('read-only') ? ', read-only' : ''})`);
    if (ui.superuser) console.log('pg-durable ui: warning: this role is a superuser and sees every tenant\'s instances; use a tenant or read-only role for people');
    await new Promise<void>((resolve) => {
      process.once('SIGINT', resolve);
      process.once('SIGTERM', resolve);
    });
    await ui.close();
    return 0;
  });
}
