import { defineStruct, u32, type ValueOf } from '../../../codec/index.js';

/**
 * struct persistent_ram_buffer (fs/pstore/ram_core.c): the header of every
 * ramoops zone. `sig` is PERSISTENT_RAM_SIG XOR the zone's value; `start`
 * is where the next write goes in data[] (the ring head), `size` how many
 * bytes of data[] are valid (it stops growing at the buffer size). Both are
 * atomic_t in C; read as u32 they compare the same way size_t does.
 */
export const persistent_ram_buffer = defineStruct('persistent_ram_buffer', {
  sig: u32,
  start: u32,
  size: u32,
});
export type PersistentRamBuffer = ValueOf<typeof persistent_ram_buffer>;
