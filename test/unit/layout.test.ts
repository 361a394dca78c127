import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const REPO = fileURLToPath(new URL('../../', import.meta.url));

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? tsFiles(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

describe('the product is only src/', () => {
  it('src/ holds the product alone: operator, broker, pod agent, SDK, CLI and what they share', () => {
    expect(readdirSync(join(REPO, 'src')).sort()).toEqual([
      'agent',
      'api',
      'backup',
      'broker',
      'cli',
      'client',
      'common',
      'k8s',
      'operator',
      'shard',
    ]);
  });

  it('no product file imports from tools/ or test/', () => {
    const outside: string[] = [];
    for (const file of tsFiles(join(REPO, 'src'))) {
      for (const m of readFileSync(file, 'utf8').matchAll(/from '(\.[^']+)'/g)) {
        const target = relative(REPO, resolve(dirname(file), m[1]!));
        if (!target.startsWith('src/')) outside.push(`${relative(REPO, file)} -> ${target}`);
      }
    }
    expect(outside).toEqual([]);
  });

  it('the image compiles and copies only src/ (plus package files and the CRDs)', () => {
    const copies = readFileSync(join(REPO, 'Dockerfile'), 'utf8')
      .split('\n')
      .filter((l) => /^COPY\s/.test(l) && !l.includes('--from='))
      .map((l) => l.replace(/\s+/g, ' ').trim());
    expect(copies).toEqual([
      'COPY package.json package-lock.json ./',
      'COPY tsconfig.json ./',
      'COPY src ./src',
      'COPY --chown=0:0 crds ./crds',
    ]);
    const tsconfig = JSON.parse(readFileSync(join(REPO, 'tsconfig.json'), 'utf8')) as { include: string[] };
    expect(tsconfig.include).toEqual(['src']);
  });
});
