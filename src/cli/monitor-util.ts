/**
 * Shared by the terminal monitoring commands (status, list, explain, watch): option parsing, the
 * database connection (as the CLI user, so RLS applies exactly as in psql) and a psql-like table.
 */
import pg from 'pg';

export class UsageError extends Error {}

export interface OptionSpec {
  /** Options that take a value (`--name value` or `--name=value`). */
  values: string[];
  /** Flags without a value. */
  flags?: string[];
}

export interface ParsedArgs {
  positional: string[];
  options: Record<string, string>;
  flags: Set<string>;
  help: boolean;
}

/** Parses `args`; `--database-url` is accepted by every command. Throws UsageError. */
export function parseArgs(args: string[], spec: OptionSpec): ParsedArgs {
  const values = new Set([...spec.values, 'database-url']);
  const flagNames = new Set(spec.flags ?? []);
  const out: ParsedArgs = { positional: [], options: {}, flags: new Set(), help: false };
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '--help' || a === '-h') {
      out.help = true;
    } else if (a === '--') {
      out.positional.push(...args.slice(i + 1));
      break;
    } else if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      const name = a.slice(2, eq < 0 ? undefined : eq);
      if (flagNames.has(name) && eq < 0) {
        out.flags.add(name);
      } else if (values.has(name)) {
        let value: string | undefined;
        if (eq >= 0) value = a.slice(eq + 1);
        else value = args[++i];
        if (value === undefined) throw new UsageError(`option --${name} needs a value`);
        out.options[name] = value;
      } else {
        throw new UsageError(`unknown option ${a}`);
      }
    } else {
      out.positional.push(a);
    }
  }
  return out;
}

/** A positive number option (e.g. --limit 10, --interval 0.5). */
export function positiveNumber(name: string, text: string | undefined, integer: boolean): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (text.trim() === '' || !Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n))) {
    throw new UsageError(`--${name} must be a positive ${integer ? 'integer' : 'number'}, got '${text}'`);
  }
  return n;
}

export const CONNECTION_HELP = `Connection: --database-url URL, else $DATABASE_URL, else the libpq environment
(PGHOST, PGPORT, PGDATABASE, PGUSER, PGPASSWORD). Everything runs as that user: row-level
security shows only the instances it submitted (superusers see all).`;

/** Connects as the CLI user: --database-url, else $DATABASE_URL, else pg's libpq defaults. */
export async function connect(options: Record<string, string>): Promise<pg.Client> {
  const url = options['database-url'] ?? process.env.DATABASE_URL;
  const client = new pg.Client({ ...(url ? { connectionString: url } : {}), application_name: 'pg-durable:cli' });
  await client.connect();
  return client;
}

/** Runs a command body with a connection, closing it afterwards. */
export async function withClient<T>(options: Record<string, string>, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = await connect(options);
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * Common command wrapper: prints help, maps UsageError to exit 2 and database errors to exit 1
 * with `pg-durable <command>: <message>` on stderr.
 */
export async function command(name: string, help: string, args: string[], spec: OptionSpec, body: (a: ParsedArgs) => Promise<number>): Promise<number> {
  let parsed: ParsedArgs;
  try {
    parsed = parseArgs(args, spec);
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(`pg-durable ${name}: ${err.message}\nRun 'pg-durable ${name} --help' for the options.`);
      return 2;
    }
    throw err;
  }
  if (parsed.help) {
    console.log(help);
    return 0;
  }
  try {
    return await body(parsed);
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(`pg-durable ${name}: ${err.message}\nRun 'pg-durable ${name} --help' for the options.`);
      return 2;
    }
    console.error(`pg-durable ${name}: ${err instanceof Error ? err.message : String(err)}`);
    return 1;
  }
}

function width(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

const cellText = (v: unknown): string => (v === null || v === undefined ? '' : v instanceof Date ? v.toISOString() : String(v));

/**
 * psql's aligned format: centred headers, a dashed rule, text left-aligned (the last column not
 * padded), numbers right-aligned, and a `(N rows)` footer.
 */
export function formatTable(columns: string[], rows: Record<string, unknown>[], numeric: string[] = []): string {
  const cells = rows.map((r) => columns.map((c) => cellText(r[c])));
  const widths = columns.map((c, i) => Math.max(width(c), ...cells.map((row) => width(row[i]))));
  const pad = (s: string, w: number, right: boolean): string => (right ? ' '.repeat(w - width(s)) + s : s + ' '.repeat(w - width(s)));
  const center = (s: string, w: number): string => {
    const left = Math.floor((w - width(s)) / 2);
    return ' '.repeat(left) + s + ' '.repeat(w - width(s) - left);
  };
  const line = (parts: string[]): string => (' ' + parts.join(' | ')).replace(/\s+$/, '');
  const out = [
    line(columns.map((c, i) => center(c, widths[i]))),
    widths.map((w) => '-'.repeat(w + 2)).join('+'),
    ...cells.map((row) => line(row.map((v, i) => pad(v, widths[i], numeric.includes(columns[i]))))),
    `(${rows.length} ${rows.length === 1 ? 'row' : 'rows'})`,
  ];
  return out.join('\n');
}

/** psql's expanded (\x) format for a single record. */
export function formatRecord(columns: string[], row: Record<string, unknown>): string {
  const w = Math.max(...columns.map(width));
  return columns.map((c) => `${c}${' '.repeat(w - width(c))} | ${cellText(row[c])}`.replace(/\s+$/, '')).join('\n');
}
