/**
 * Vitest global setup: tests run the operator and broker from dist/ (the test kubelet runs
 * `node dist/broker/main.js`, e2e tests `node dist/operator/main.js`), so dist/ must be the build of
 * the sources under test. Rebuilds (`tsc -p tsconfig.json`) when a source file is newer than its
 * compiled file or has none; otherwise costs a directory walk.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = fileURLToPath(new URL('../../', import.meta.url));

/** The first source file under src/ whose dist/ counterpart is missing or older, if any. */
export function staleSource(repo = REPO): string | undefined {
  const src = join(repo, 'src');
  const walk = (dir: string): string | undefined => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) {
        const found = walk(path);
        if (found) return found;
      } else if (entry.name.endsWith('.ts')) {
        const out = join(repo, 'dist', relative(src, path)).replace(/\.ts$/, '.js');
        let built: number;
        try {
          built = statSync(out).mtimeMs;
        } catch {
          return path;
        }
        if (statSync(path).mtimeMs > built) return path;
      }
    }
    return undefined;
  };
  return walk(src);
}

export default function setup(): void {
  const stale = staleSource();
  if (!stale) return;
  console.log(`dist/ is older than ${relative(REPO, stale)}: building (tsc -p tsconfig.json)`);
  execFileSync('npx', ['tsc', '-p', 'tsconfig.json'], { cwd: REPO, stdio: 'inherit' });
}
