/**
 * The dashboard's static files, shipped in the npm package under dist/ui (build/ui-assets.ts copies
 * src/ui/page and the browser builds of Mermaid and vis-timeline there): plain ES modules and CSS,
 * no build step on the user's side. Files are read once at start, served from memory with an ETag,
 * and gzipped once on first request (Mermaid's single-file build is 5.5 MB, 1.5 MB gzipped).
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { extname, join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { packageRoot } from '../embedded/cluster';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
  '.txt': 'text/plain; charset=utf-8',
};

export interface Asset {
  body: Buffer;
  type: string;
  etag: string;
  gzip?: Buffer;
  /** Vendor files never change within a release; page files are revalidated. */
  immutable: boolean;
}

export class Assets {
  private readonly files = new Map<string, Asset>();
  readonly indexHtml: string;

  constructor(root = join(packageRoot(), 'dist/ui')) {
    if (!existsSync(join(root, 'page/index.html'))) {
      throw new Error(`dashboard files not found in ${root}: run 'npm run build' (a checkout) or reinstall the package`);
    }
    for (const [dir, prefix, immutable] of [['page', '/static/', false], ['vendor', '/vendor/', true]] as const) {
      const base = join(root, dir);
      if (!existsSync(base)) continue;
      for (const name of readdirSync(base)) {
        const type = TYPES[extname(name)];
        if (!type || name === 'index.html' || !/^[A-Za-z0-9._-]+$/.test(name)) continue;
        const body = readFileSync(join(base, name));
        this.files.set(prefix + name, { body, type, immutable, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"` });
      }
    }
    this.indexHtml = readFileSync(join(root, 'page/index.html'), 'utf8');
  }

  /** The asset at a URL path, or undefined (only files present at start are ever served). */
  get(path: string): Asset | undefined {
    return this.files.get(path);
  }

  gzipped(asset: Asset): Buffer {
    asset.gzip ??= gzipSync(asset.body);
    return asset.gzip;
  }
}
