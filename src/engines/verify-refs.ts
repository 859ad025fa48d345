/**
 * verify, for the manifests of a chain (verify.ts runs it before reading any
 * archive): one pass over each manifest that
 *  - applies restore's tree-shape rule (restore-checks.ts TreeShape) and its
 *    name rule, so a manifest restore would refuse (a symlink `a` with
 *    entries under `a/`, a name "a/x" or "..") is reported, quick or full;
 *  - (full) collects what every entry that lives in an OLDER archive of the
 *    chain says of that archive's member: type, size, content hash, at its
 *    offset (and at its data offset for a second name of a file). Restore
 *    refuses an entry whose member disagrees; verify checks the same while
 *    verify-archive.ts reads that archive anyway: one Map lookup per member.
 *
 * Memory: one expectation per distinct (archive, offset), identical ones of
 * several manifests stored once (the unchanged files of a chain are the same
 * member in every manifest), as a short string. Which manifests hold a bad
 * expectation, and under which path, is looked up again only when one fails.
 */
import type { ManifestEntry } from '../core/manifest.js';
import { joinRel, safeComponents, showPath } from '../core/path-order.js';
import { readBlocks, type HolderFiles } from '../medium/manifest-reader.js';
import type { TarEntry } from '../tar/entry.js';
import { TreeShape } from './restore-checks.js';

const HASH_RE = /^[0-9a-f]{16}$/;

/** "type/size/hash/sparse" of the member at one offset; size and hash empty when not compared. */
type Want = string;

function dataWant(e: ManifestEntry): Want {
  const hash = e.hash && HASH_RE.test(e.hash) && !e.unread ? e.hash : '';
  return `file/${e.size}/${hash}/${e.sparse ? 1 : 0}`;
}

/** What an entry says of the member at its own offset. */
export function wantAt(e: ManifestEntry): Want {
  if (e.type !== 'file') return `${e.type}///`;
  return e.dataOffset !== undefined ? 'hardlink///' : dataWant(e);
}

/** The expectations an entry in another archive puts on that archive's members: [offset, want] pairs. */
function wantsOf(e: ManifestEntry): Array<[number, Want]> {
  const at: [number, Want] = [e.offset, wantAt(e)];
  return e.type === 'file' && e.dataOffset !== undefined ? [at, [e.dataOffset, dataWant(e)]] : [at];
}

/** A member's disagreement with a want (hash aside), in words; undefined when it agrees. */
function differs(want: Want, meta: TarEntry): string | undefined {
  const [type, size] = want.split('/');
  if (meta.type !== type) return `the member there is a ${meta.type}, the manifest says ${type}`;
  if (type === 'file' && String(meta.size) !== size) return `the member there is ${meta.size} bytes, the manifest says ${size}`;
  return undefined;
}

export interface RefFailure {
  archive: string;
  offset: number;
  want: Want;
  what: string;
}

/** The expectations of all manifests being verified, per archive id, by member offset. */
export class ChainRefs {
  private readonly byArchive = new Map<string, Map<number, Want | Want[]>>();
  readonly failures: RefFailure[] = [];
  private failuresSeen = 0;

  add(archive: string, e: ManifestEntry): void {
    let m = this.byArchive.get(archive);
    if (!m) this.byArchive.set(archive, (m = new Map()));
    for (const [offset, want] of wantsOf(e)) {
      const had = m.get(offset);
      if (had === undefined) m.set(offset, want);
      else if (typeof had === 'string') {
        if (had !== want) m.set(offset, [had, want]);
      } else if (!had.includes(want)) had.push(want);
    }
  }

  /** The checker for one archive as it is read (undefined when no other manifest points into it). */
  forArchive(archive: string): ArchiveRefs | undefined {
    const m = this.byArchive.get(archive);
    this.byArchive.delete(archive);
    return m && m.size ? new ArchiveRefs(archive, m, this) : undefined;
  }

  fail(f: RefFailure): void {
    // Bounded: the first failures name the manifests; the rest are only counted.
    if (this.failuresSeen++ < 1000) this.failures.push(f);
  }
}

/** Checks the members of one archive against what other manifests expect of them. */
export class ArchiveRefs {
  constructor(
    private readonly archive: string,
    private readonly wants: Map<number, Want | Want[]>,
    private readonly refs: ChainRefs,
  ) {}

  /**
   * At a member's header: compares type and size; returns the hashes wanted of its content (and whether sparse).
   * A want equal to what `own` (the archive's own manifest entry at this offset) says of the member is left to the archive's own
   * check: when the member disagrees with both, the archive is what is damaged, not the later manifests.
   */
  member(offset: number, meta: TarEntry, ownEntry?: ManifestEntry): { hashes: Want[]; sparse: boolean } | undefined {
    const w = this.wants.get(offset);
    if (w === undefined) return undefined;
    this.wants.delete(offset);
    const own = ownEntry && wantAt(ownEntry);
    const hashes: Want[] = [];
    let sparse = false;
    for (const want of typeof w === 'string' ? [w] : w) {
      if (want === own) continue;
      const what = differs(want, meta);
      if (what) this.refs.fail({ archive: this.archive, offset, want, what });
      else if (want.split('/')[2]) {
        hashes.push(want);
        sparse ||= want.endsWith('/1');
      }
    }
    return hashes.length ? { hashes, sparse } : undefined;
  }

  /** At the member's end: its content hash against each want's. */
  content(offset: number, hashes: Want[], got: string): void {
    for (const want of hashes) {
      const h = want.split('/')[2]!;
      if (h !== got) this.refs.fail({ archive: this.archive, offset, want, what: `the member's content xxh64 is ${got}, the manifest says ${h}` });
    }
  }

  /** After the whole archive was read: offsets where no member began. */
  finish(): void {
    for (const [offset, w] of this.wants) {
      for (const want of typeof w === 'string' ? [w] : w) this.refs.fail({ archive: this.archive, offset, want, what: 'the archive has no member there' });
    }
    this.wants.clear();
  }
}

/** Entries whose name restore would refuse (absolute, empty, "." or "..", or a "/" in a name). */
function badName(dir: Buffer, e: ManifestEntry): boolean {
  return e.name.length === 0 || e.name.includes(0x2f) || !safeComponents(e.name) || (dir.length > 0 && !safeComponents(dir));
}

/**
 * One pass over a manifest: the first shape or name problem (words after
 * "its manifest"), and, when `refs` is given, the expectations of its
 * entries that live in another archive of `inChain`.
 */
export function scanManifest(file: string, ownId: string, inChain: Set<string>, refs?: ChainRefs, holders?: HolderFiles): string | undefined {
  const shape = new TreeShape();
  for (const block of readBlocks(file, holders)) {
    if (block.dir.length > 0 && !safeComponents(block.dir)) return `has a directory block with an unsafe path "${showPath(block.dir)}"`;
    const why = shape.add(block.dir, block.self.type);
    if (why) return why;
    if (refs && block.self.archive !== ownId && inChain.has(block.self.archive)) refs.add(block.self.archive, block.self);
    for (const e of block.entries) {
      const rel = joinRel(block.dir, e.name);
      if (badName(block.dir, e)) return `has an entry with an unsafe name "${showPath(rel)}"`;
      const w = shape.add(rel, e.type);
      if (w) return w;
      if (refs && e.archive !== ownId && inChain.has(e.archive)) refs.add(e.archive, e);
    }
  }
  return undefined;
}

/**
 * For failed expectations: the manifests (of `files`, each with its backup id)
 * that hold them, each with the path of its first such entry and the reason.
 */
export function blameManifests(
  files: Array<{ file: string; id: string; holders?: HolderFiles }>,
  failures: RefFailure[],
): Array<{ file: string; member: string; what: string; count: number }> {
  const byKey = new Map(failures.map((f) => [`${f.archive}@${f.offset}@${f.want}`, f]));
  const out: Array<{ file: string; member: string; what: string; count: number }> = [];
  for (const { file, id, holders } of files) {
    let first: { member: string; what: string } | undefined;
    let count = 0;
    // Read whole once already; should it fail now (changed meanwhile), the manifest is named without a path.
    const blocks = (function* () {
      try {
        yield* readBlocks(file, holders);
      } catch {
        count = Math.max(count, 1);
        first ??= { member: '', what: 'it changed while verify read it' };
      }
    })();
    for (const block of blocks) {
      const check = (e: ManifestEntry, rel: Buffer): void => {
        if (e.archive === id) return;
        for (const [offset, want] of wantsOf(e)) {
          const f = byKey.get(`${e.archive}@${offset}@${want}`);
          if (!f) continue;
          count++;
          first ??= { member: showPath(rel), what: `${showPath(rel) || '/'}: backup ${f.archive}'s archive at tar offset ${f.offset}: ${f.what}` };
          return;
        }
      };
      check(block.self, block.dir);
      for (const e of block.entries) check(e, joinRel(block.dir, e.name));
    }
    if (first) out.push({ file, member: first.member, what: first.what, count });
  }
  return out;
}
