import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository: this file is tools/local/. */
export const REPO_ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));

/** dist/<program>/main.js of this repository: the product build (`npm run build`) the tools run. */
export function productMain(program: 'broker' | 'operator' | 'agent' | 'cli'): string {
  return join(REPO_ROOT, 'dist', program, 'main.js');
}
