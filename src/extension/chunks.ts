/**
 * Parts of the plv8 bundle that load on first use (build/bundle.ts): each is a plv8 function
 * (`df._pgd_load_<part>()`) whose body installs `globalThis[slot] = { hash, ... }`. The hash is the
 * chunk's own, compiled into whoever loads it, so a plv8 context that holds an older chunk (after
 * ALTER EXTENSION ... UPDATE) evaluates the new one.
 */
export function loadChunk<T>(fn: string, slot: string, hash: string): T {
  const g = globalThis as unknown as Record<string, { hash?: string } | undefined>;
  if (g[slot]?.hash !== hash) {
    plv8.find_function(fn)();
    if (g[slot]?.hash !== hash) throw new Error(`pg_durable: ${fn}() did not install the part of this build (extension and bundle out of sync; run ALTER EXTENSION pg_durable UPDATE)`);
  }
  return g[slot] as T;
}
