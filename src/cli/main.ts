/**
 * `pg-durable <command>`: the worker, the embedded demo, and terminal tools. Each command lives in
 * its own module and exports `run(args: string[]): Promise<number>` (the exit code).
 */
type Command = { summary: string; load: () => Promise<{ run: (args: string[]) => Promise<number> }> };

const COMMANDS: Record<string, Command> = {
  worker: { summary: 'run the durable worker against a database', load: () => import('./worker') },
  install: { summary: "copy the extension files into a local PostgreSQL (pg_config --sharedir)", load: () => import('./install') },
  demo: { summary: 'start a throwaway PostgreSQL and a worker, and run the walkthrough', load: () => import('./demo') },
  status: { summary: "show an instance's status, execution and output", load: () => import('./status') },
  list: { summary: 'list your instances, newest first', load: () => import('./list') },
  explain: { summary: 'explain an instance or a workflow (text, mermaid or dot)', load: () => import('./explain') },
  watch: { summary: "redraw an instance's live tree until it ends", load: () => import('./watch') },
  ui: { summary: 'serve a web dashboard of your instances (graph, timeline, actions)', load: () => import('./ui') },
};

function usage(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((k) => k.length));
  const lines = Object.entries(COMMANDS).map(([k, c]) => `  ${k.padEnd(width)}  ${c.summary}`);
  return `usage: pg-durable <command> [options]\n\ncommands:\n${lines.join('\n')}\n\nRun 'pg-durable <command> --help' for a command's options.`;
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    console.log(usage());
    return name ? 0 : 2;
  }
  const command = COMMANDS[name];
  if (!command) {
    console.error(`pg-durable: unknown command '${name}'\n\n${usage()}`);
    return 2;
  }
  return (await command.load()).run(rest);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    console.error(`pg-durable: ${err instanceof Error ? err.message : String(err)}`);
    process.exitCode = 1;
  },
);
