import crypto from 'node:crypto';
import { PAGE_SIZE, type PhysicalRam } from '../../src/machine/index.js';

const HASH = 20;
const CHUNK_PAGES = 256;

/** A fingerprint of every frame of RAM: sha1 per page, for "which frames changed" across a step. */
export function frameHashes(ram: PhysicalRam): Buffer {
  const frames = Number(ram.size / BigInt(PAGE_SIZE));
  const out = Buffer.alloc(frames * HASH);
  const buf = Buffer.alloc(CHUNK_PAGES * PAGE_SIZE);
  for (let f = 0; f < frames; f += CHUNK_PAGES) {
    const n = Math.min(CHUNK_PAGES, frames - f);
    ram.readInto(BigInt(f * PAGE_SIZE), buf.subarray(0, n * PAGE_SIZE));
    for (let i = 0; i < n; i++) {
      crypto.createHash('sha1').update(buf.subarray(i * PAGE_SIZE, (i + 1) * PAGE_SIZE)).digest().copy(out, (f + i) * HASH);
    }
  }
  return out;
}

export function pageHash(page: Uint8Array): Buffer {
  return crypto.createHash('sha1').update(page).digest();
}

export function hashOf(hashes: Buffer, pfn: bigint): Buffer {
  const i = Number(pfn) * HASH;
  return hashes.subarray(i, i + HASH);
}

/** Frames whose content differs between two fingerprints. */
export function changedFrames(before: Buffer, after: Buffer): bigint[] {
  const out: bigint[] = [];
  for (let i = 0; i < before.length; i += HASH) {
    if (before.compare(after, i, i + HASH, i, i + HASH) !== 0) out.push(BigInt(i / HASH));
  }
  return out;
}
