/**
 * Copies the dashboard (`pg-durable ui`) into dist/ui, which the npm package ships: the page's own
 * files (src/ui/page: plain ES modules, CSS, the HTML shell) and the single-file browser builds of
 * its two libraries with their licences, so users install no browser dependency and run no build.
 */
import { copyFileSync, existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './paths';

const VENDOR: [from: string, to: string][] = [
  ['node_modules/mermaid/dist/mermaid.min.js', 'mermaid.min.js'],
  ['node_modules/mermaid/LICENSE', 'mermaid.LICENSE.txt'],
  ['node_modules/vis-timeline/standalone/umd/vis-timeline-graph2d.min.js', 'vis-timeline-graph2d.min.js'],
  ['node_modules/vis-timeline/dist/vis-timeline-graph2d.min.css', 'vis-timeline-graph2d.min.css'],
  ['node_modules/vis-timeline/LICENSE.MIT.txt', 'vis-timeline.LICENSE-MIT.txt'],
  ['node_modules/vis-timeline/LICENSE.Apache-2.0.txt', 'vis-timeline.LICENSE-Apache-2.0.txt'],
];

export function copyUiAssets(): void {
  const out = join(ROOT, 'dist/ui');
  rmSync(out, { recursive: true, force: true });
  mkdirSync(join(out, 'page'), { recursive: true });
  mkdirSync(join(out, 'vendor'), { recursive: true });
  for (const name of readdirSync(join(ROOT, 'src/ui/page'))) copyFileSync(join(ROOT, 'src/ui/page', name), join(out, 'page', name));
  for (const [from, to] of VENDOR) {
    const src = join(ROOT, from);
    if (!existsSync(src)) throw new Error(`dashboard asset missing: ${from} (run npm ci)`);
    copyFileSync(src, join(out, 'vendor', to));
  }
}
