/**
 * The second compressor of stage 1: compresses the pages main hands it in
 * shared memory, and hands the results back. Its own page codec, same
 * settings, so the bytes are exactly those main would have produced.
 */
import { workerData } from 'node:worker_threads';
import { makePageCodec } from '../codecs/index.js';
import type { DumpCompress } from '../codecs/index.js';
import { PAGE_BYTES, STATE, STATE_DEAD, STATE_DONE, STATE_QUIT, STATE_WORK, COUNT, metaIndexFlags, metaIndexSize } from './compress_shared.js';

const { compress, level, input, output, meta } = workerData as {
  compress: DumpCompress; level: number; input: SharedArrayBuffer; output: SharedArrayBuffer; meta: SharedArrayBuffer;
};
const codec = makePageCodec(compress, { level });
const m = new Int32Array(meta);
const inBytes = new Uint8Array(input);
const outBytes = new Uint8Array(output);
const scratch = new Uint8Array(PAGE_BYTES);

/**
 * LKCD_FAULT_STAGE1_WORKER (tests only): 'exit' ends the thread at its
 * first batch without a word, 'stall' blocks it there forever, 'throw'
 * fails it. Stage 1 must finish on one thread with the same bytes.
 */
const fault = process.env.LKCD_FAULT_STAGE1_WORKER;

try {
  for (;;) {
    Atomics.wait(m, STATE, STATE_DONE);
    const state = Atomics.load(m, STATE);
    if (state === STATE_QUIT) break;
    if (state !== STATE_WORK) continue;
    if (fault === 'exit') process.exit(1);
    if (fault === 'stall') Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
    if (fault === 'throw') throw new Error('injected compress worker failure');
    const n = m[COUNT];
    for (let i = 0; i < n; i++) {
      const enc = codec.encode(inBytes.subarray(i * PAGE_BYTES, (i + 1) * PAGE_BYTES), scratch);
      outBytes.set(enc.data, i * PAGE_BYTES);
      m[metaIndexSize(i)] = enc.size;
      m[metaIndexFlags(i)] = enc.flags;
    }
    Atomics.store(m, STATE, STATE_DONE);
    Atomics.notify(m, STATE);
  }
} catch {
  // Say so at once: the main thread takes the work back instead of waiting out its bound.
  Atomics.store(m, STATE, STATE_DEAD);
  Atomics.notify(m, STATE);
} finally {
  codec.close();
}
