import { describe, expect, it } from 'vitest';
import { DUMP_COMPRESS_GZIP, DUMP_COMPRESS_NONE, DUMP_COMPRESS_RLE, makePageCodec, type DumpCompress } from '../../../src/dump/index.js';
import { ParallelPageCodec } from '../../../src/dump/writer/parallel_codec.js';
import { ContentGenerator } from '../../../src/kernel/workload/content.js';

const CLASSES = ['page_cache', 'anon_heap', 'slab', 'database', 'incompressible', 'zero'] as const;

describe.each([
  ['GZIP', DUMP_COMPRESS_GZIP], ['RLE', DUMP_COMPRESS_RLE], ['NONE', DUMP_COMPRESS_NONE],
] as Array<[string, DumpCompress]>)('ParallelPageCodec, %s', (_name, compress) => {
  it('encodes a batch on two threads into exactly what one codec gives, page by page', () => {
    const gen = new ContentGenerator({ seed: 42, poolBytes: 1 << 20 });
    const pages = Array.from({ length: 128 }, (_, i) => {
      const p = new Uint8Array(4096);
      gen.fill(CLASSES[i % CLASSES.length], BigInt(1000 + i), p);
      return p;
    });
    const serial = makePageCodec(compress);
    const scratch = new Uint8Array(4096);
    const expected = pages.map((p) => {
      const e = serial.encode(p, scratch);
      return { flags: e.flags, data: Buffer.from(e.data) };
    });
    const codec = makePageCodec(compress);
    const parallel = new ParallelPageCodec(codec, compress);
    try {
      // The worker is built into dist/ by `npm test`'s pretest: it must really be in use here.
      expect(parallel.threads).toBe(2);
      for (let round = 0; round < 3; round++) {
        const got = parallel.encodeBatch(pages);
        got.forEach((g, i) => {
          expect(g.flags, `page ${i}`).toBe(expected[i].flags);
          expect(Buffer.from(g.data).equals(expected[i].data), `page ${i}`).toBe(true);
        });
      }
      // Short batches stay on this thread and agree too.
      const few = parallel.encodeBatch(pages.slice(0, 3));
      few.forEach((g, i) => expect(Buffer.from(g.data).equals(expected[i].data)).toBe(true));
    } finally {
      parallel.close();
      codec.close();
      serial.close();
    }
  });
});
