/**
 * The folder layout is the architecture (docs/ARCHITECTURE.md): this holds
 * the source to it. Read from src/ as text (static imports, relative ones):
 * no two folders import each other, no file cycle, the three engines never
 * import each other (only engines/registry.ts names them), and the pure core
 * imports nothing that does I/O.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const srcDir = path.join(root, 'src');

function sourceFiles(): string[] {
  return (fs.readdirSync(srcDir, { recursive: true }) as string[]).filter((f) => f.endsWith('.ts')).map((f) => path.join('src', f));
}

/** file -> the files it imports (static relative imports; the registry's dynamic ones are its job). */
function importGraph(): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const f of sourceFiles()) {
    const text = fs.readFileSync(path.join(root, f), 'utf8');
    const targets = [...text.matchAll(/^(?:import|export)[^;]*?from\s+'(\.[^']+)'/gms)].map((m) => path.normalize(path.join(path.dirname(f), m[1]!)).replace(/\.js$/, '.ts'));
    graph.set(f, targets);
  }
  return graph;
}

const folderOf = (f: string): string => f.split(path.sep)[1]!;

/** Groups of nodes that reach each other (Tarjan), only those of two or more. */
function cycles(graph: Map<string, string[]>): string[][] {
  let next = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const out: string[][] = [];
  const visit = (v: string): void => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue;
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const group: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        group.push(w);
      } while (w !== v);
      if (group.length > 1) out.push(group);
    }
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return out;
}

test('no file of src/ is part of an import cycle', () => {
  assert.deepEqual(cycles(importGraph()), []);
});

test('no two folders of src/ import each other, directly or through others', () => {
  const folders = new Map<string, string[]>();
  for (const [f, targets] of importGraph()) {
    const from = folderOf(f);
    const to = new Set(folders.get(from) ?? []);
    for (const t of targets) if (folderOf(t) !== from) to.add(folderOf(t));
    folders.set(from, [...to]);
  }
  assert.deepEqual(cycles(folders), []);
});

test('the engines are siblings: tar, rsync and raw never import each other, and nothing outside engines/ reaches into one but the registry', () => {
  const engineOf = (f: string): string | undefined => /^src\/engines\/(tar|rsync|raw)\//.exec(f.split(path.sep).join('/'))?.[1];
  const crossings: string[] = [];
  for (const [f, targets] of importGraph()) {
    if (f.split(path.sep).join('/') === 'src/engines/registry.ts') continue;
    for (const t of targets) {
      const to = engineOf(t);
      if (to && engineOf(f) !== to) crossings.push(`${f} -> ${t}`);
    }
  }
  assert.deepEqual(crossings, []);
});

test('the pure core imports no module that does I/O', () => {
  const allowed = new Set(['core', 'tar']);
  const bad = [...importGraph()].filter(([f]) => folderOf(f) === 'core').flatMap(([f, targets]) => targets.filter((t) => !allowed.has(folderOf(t))).map((t) => `${f} -> ${t}`));
  assert.deepEqual(bad, []);
});
