/** df.version() (API §10.9). df.target_database() is plain SQL (src/sql/60_monitoring.sql). */

declare const __PGD_VERSION__: string;
declare const __BUILD_TIME__: string;

/** `<package version> (built <UTC build time YYYY-MM-DDTHH:MM:SSZ>)`, both fixed at build time. */
export function version(): string {
  return `${__PGD_VERSION__} (built ${__BUILD_TIME__})`;
}
