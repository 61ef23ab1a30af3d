/** Layout of the shared memory between stage 1 and its compress worker. */
export const PAGE_BYTES = 4096;
/** Pages the worker takes per batch. */
export const WORKER_BATCH = 64;
/** meta[STATE]: DONE (idle, results ready), WORK (pages waiting), QUIT, DEAD (the worker failed and stopped). */
export const STATE = 0;
export const COUNT = 1;
export const STATE_DONE = 0;
export const STATE_WORK = 1;
export const STATE_QUIT = 2;
export const STATE_DEAD = 3;
export const META_INTS = 2 + 2 * WORKER_BATCH;
export function metaIndexSize(i: number): number { return 2 + i; }
export function metaIndexFlags(i: number): number { return 2 + WORKER_BATCH + i; }
